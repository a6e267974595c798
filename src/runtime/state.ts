// Where tsrun keeps what it knows. Persistent data (images, container records) lives
// under `root` (default /var/lib/tsrun); runtime data that must not survive a reboot
// (pids, the start gate) lives under `runRoot` (default /run/tsrun). --root DIR or
// TSRUN_ROOT moves both: DIR and DIR/run.
import { closeSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, procStartTime, processesWithCwd } from './proc-scan.js';
import { sleepSync } from '../sleep.js';
import type { Kernel } from '../linux/kernel.js';
import { removeStaleCgroup, sweepEmptyCgroups } from '../cgroups/manager.js';
import { collectNetworkGarbage } from '../network/attach.js';

export interface Paths {
  root: string;
  runRoot: string;
}

export function resolvePaths(root?: string): Paths {
  const r = root ?? process.env.TSRUN_ROOT;
  if (r) return { root: r, runRoot: join(r, 'run') };
  return { root: '/var/lib/tsrun', runRoot: '/run/tsrun' };
}

export type Status = 'creating' | 'created' | 'running' | 'stopped';

/** The runtime-spec's statuses, plus runc's `paused` (a frozen cgroup), which engines expect. */
export type OciStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** runtime.md "State": what `tsrun-runtime state` prints and what hooks read on stdin. */
export interface OciState {
  ociVersion: string;
  id: string;
  status: OciStatus;
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
  created?: string;
}

export function ociStateOf(c: Omit<OciState, 'status'>, status: OciStatus): OciState {
  return { ociVersion: c.ociVersion, id: c.id, status, pid: status === 'stopped' ? 0 : c.pid, bundle: c.bundle, annotations: c.annotations, created: c.created };
}

export interface RuntimeState {
  id: string;
  /** the tsrun process that owns a foreground container; the container dies with it */
  owner?: { pid: number; start: number };
  pid?: number;
  pidStart?: number;
  status: Status;
  bundle: string;
  rootfs: string;
  created: string;
  exitCode?: number;
  /** the container's cgroup, relative to each hierarchy's root (issue 4) */
  cgroupsPath?: string;
  /** the OOM killer struck in the container's cgroup */
  OOMKilled?: boolean;
}

/** 64 hex digits from the kernel's CSPRNG (node:crypto would cost ~3 ms to load on a `run` that needs nothing else from it). */
export function newId(): string {
  const b = Buffer.alloc(32);
  const fd = openSync('/dev/urandom', 'r');
  try {
    if (readSync(fd, b, 0, 32, null) !== 32) throw new Error('short read from /dev/urandom');
  } finally {
    closeSync(fd);
  }
  return b.toString('hex');
}

export function containersDir(p: Paths): string {
  return join(p.runRoot, 'containers');
}

export function stateDir(p: Paths, id: string): string {
  return join(containersDir(p), id);
}

/** Atomic: write a temp file, then rename over the old one. A reader sees the old or the new state, never half. */
export function writeJson(path: string, data: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

export function readState(dir: string): RuntimeState | null {
  try {
    const s = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as RuntimeState;
    return typeof s.id === 'string' && typeof s.status === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function createStateDir(p: Paths, id: string): string {
  mkdirSync(containersDir(p), { recursive: true, mode: 0o711 });
  const dir = stateDir(p, id);
  // 0711: the container process, possibly non-root already, must reach the gate by name.
  mkdirSync(dir, { mode: 0o711 });
  return dir;
}

export function ownerNow(): { pid: number; start: number } {
  return { pid: process.pid, start: procStartTime(process.pid) ?? 0 };
}

/**
 * Cleans up after tsrun processes that were killed (kill -9) mid-run: their containers
 * are killed, and their state removed. A live owner's containers are never touched.
 */
export function collectGarbage(k: Kernel, p: Paths): string[] {
  const removed: string[] = [];
  let ids: string[];
  try {
    ids = readdirSync(containersDir(p));
  } catch {
    ids = []; // no state yet; the cgroup sweep below still runs
  }
  for (const id of ids) {
    const dir = stateDir(p, id);
    const s = readState(dir);
    if (s?.owner && isAlive(s.owner.pid, s.owner.start)) continue;
    if (!s) {
      // Unreadable state: a tsrun killed before its first write, or a corrupt file.
      // Give a live writer a grace period before treating it as garbage.
      try {
        if (Date.now() - statSync(dir).mtimeMs < 30_000) continue;
      } catch {
        continue;
      }
    } else if (!s.owner) continue; // detached containers are the monitor's business
    const pids = new Set<number>(processesWithCwd(dir));
    if (s?.pid && s.pidStart && isAlive(s.pid, s.pidStart)) pids.add(s.pid);
    for (const pid of pids) {
      try {
        k.kill(pid, 9, `tsrun that owned container ${id.slice(0, 12)} is gone: kill its orphan`);
      } catch {
        /* gone */
      }
    }
    // SIGKILL is delivered asynchronously: wait (briefly) until the orphan has died, so
    // the network sweep below sees a container that has ended.
    for (let i = 0; i < 200 && s?.pid && s.pidStart && isAlive(s.pid, s.pidStart); i++) sleepSync(5);
    if (s?.cgroupsPath) {
      try {
        removeStaleCgroup(k, s.cgroupsPath);
      } catch {
        continue; // keep the state, so a later run retries the cgroup
      }
    }
    rmSync(dir, { recursive: true, force: true });
    removed.push(id);
  }
  try {
    sweepEmptyCgroups(k); // cgroups (issue 4): stale ones whose state dir is gone
  } catch {
    /* best effort */
  }
  try {
    collectNetworkGarbage(); // networking (issue 7): veths, addresses, rules of killed tsruns
  } catch {
    /* best effort: the next command retries */
  }
  return removed;
}
