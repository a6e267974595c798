// The file access every controller module goes through. Writes use Kernel.writeFile,
// so `--trace` shows each cgroup write and unit tests can point a manager at fixtures.
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { TsrunError } from '../errors.js';
import { KernelError, type Kernel } from '../linux/kernel.js';
import type { Blame, Ctl } from './types.js';
import { sleepSync } from '../sleep.js';


export function makeCtl(k: Kernel, dir: string): Ctl {
  const at = (f: string): string => (f.startsWith('/') ? f : join(dir, f));
  return {
    k,
    dir,
    write(file, value, blame) {
      try {
        k.writeFile(at(file), value, `${blame.field} (${blame.flag})`);
      } catch (e) {
        throw refused(at(file), value, blame, e);
      }
    },
    read: (file) => readFileSync(at(file), 'utf8'),
    tryRead(file) {
      try {
        return readFileSync(at(file), 'utf8');
      } catch {
        return null;
      }
    },
    exists: (file) => existsSync(at(file)),
  };
}

/** A refused write, named by the flag the user typed: the spec field and the errno follow. */
export function refused(path: string, value: string, blame: Blame, e: unknown): TsrunError {
  const why = e instanceof KernelError ? `${e.code}` : e instanceof Error ? e.message : String(e);
  let hint = `${blame.field}: the kernel refused "${value}" in ${path} (${why})`;
  if (e instanceof KernelError && e.code === 'ENOENT') hint += '; this kernel has no such cgroup file (controller missing or not enabled)';
  if (e instanceof KernelError && e.code === 'EBUSY' && path.endsWith('memory.limit_in_bytes')) hint += '; the limit is below what the container already uses';
  if (e instanceof KernelError && e.code === 'EINVAL' && path.endsWith('memory.limit_in_bytes')) hint += '; on cgroup v1 the memory limit may not exceed memory+swap: set --memory-swap as well';
  return new TsrunError('CGROUP', `invalid ${blame.flag} value ${blame.value}: the kernel refused it`, { hint, cause: e });
}

/** Pids listed in a cgroup.procs, and in the cgroups below it (a container may make its own). */
export function procsRecursive(dir: string): number[] {
  const out = new Set<number>();
  const walk = (d: string): void => {
    let text = '';
    try {
      text = readFileSync(join(d, 'cgroup.procs'), 'utf8');
    } catch {
      return;
    }
    for (const l of text.split('\n')) if (l.trim()) out.add(Number(l));
    for (const e of subdirs(d)) walk(join(d, e));
  };
  walk(dir);
  return [...out];
}

function subdirs(d: string): string[] {
  try {
    return readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * rmdir a cgroup and its sub-cgroups, deepest first. A cgroup whose last task is a
 * zombie not yet reaped stays busy for a moment (EBUSY), so retry briefly.
 */
export function removeTree(dir: string, timeoutMs = 2000): void {
  for (const e of subdirs(dir)) removeTree(join(dir, e), timeoutMs);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > deadline) {
        throw new TsrunError('CGROUP', `cannot remove cgroup ${dir}: ${code}`, { cause: e, hint: 'a process may still be in it: see its cgroup.procs' });
      }
      sleepSync(10);
    }
  }
}

/** SIGKILL every listed pid except tsrun itself (a v1 setup thread can sit in the cgroup for a moment). */
export function killPids(k: Kernel, pids: number[], why: string): void {
  for (const pid of pids) {
    if (pid === process.pid) continue;
    try {
      k.kill(pid, 9, why);
    } catch {
      /* already gone */
    }
  }
}

/** Polls until `empty()` or the timeout. */
export function waitUntil(empty: () => boolean, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (empty()) return true;
    if (Date.now() > deadline) return false;
    sleepSync(5);
  }
}

/** Validates and normalises a spec cgroupsPath into a path relative to each hierarchy's root. */
export function relativeCgroupPath(cgroupsPath: string): string {
  if (/^[^/]*:[^/]*:[^/]*$/.test(cgroupsPath)) {
    throw new TsrunError('CGROUP', `linux.cgroupsPath "${cgroupsPath}" is in systemd's slice:prefix:name form, which needs the systemd cgroup driver`, { hint: 'tsrun manages cgroupfs directly: use a path such as "tsrun/NAME"' });
  }
  const parts = cgroupsPath.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) {
    throw new TsrunError('CGROUP', `linux.cgroupsPath "${cgroupsPath}" must name a cgroup below the hierarchy root, without ".."`);
  }
  return parts.join('/');
}
