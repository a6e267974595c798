// Temp directories for e2e tests, removed safely.
//
// Why "safely": a test's temp dir may hold a rootfs with bind mounts of host paths
// under it if tsrun (or the test) leaked one into the host's mount namespace. fs.rm
// follows into mounted directories, so removing such a tree would delete host files.
// Every mount under a dir is detached (umount -l) before the dir is removed.
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

/** Prefix of every temp dir the helpers create: easy to spot if one is left behind. */
export const TEMP_PREFIX = 'tsrun-e2e-';

/** Undoes the octal escapes (\040 for space...) that /proc/self/mountinfo uses in paths. */
export function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points in this process's mount namespace at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = unescapeMountPath(f[4]!);
    if (mp === dir || mp.startsWith(dir + '/')) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Detaches every mount at or under `dir`. Returns what it had to detach (each one is a leak). */
export function detachMountsUnder(dir: string): string[] {
  const found = mountsUnder(dir);
  for (const mp of found) {
    try {
      execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
    } catch {
      /* already gone, or stacked: the next pass catches it */
    }
  }
  return found;
}

/** Removes `dir`, detaching mounts under it first. Throws if a mount survives. */
export function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (let i = 0; i < 5 && mountsUnder(dir).length > 0; i++) detachMountsUnder(dir);
  const left = mountsUnder(dir);
  if (left.length) throw new Error(`refusing to remove ${dir}: still mounted under it: ${left.join(', ')}`);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * A set of temp dirs owned by one test (or one file). `make()` creates a fresh dir
 * under the OS temp dir; `removeAll()` removes them all and reports any that could not
 * be removed.
 */
export class TempDirs {
  readonly dirs: string[] = [];

  make(label = 'tmp'): string {
    const d = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}${label}-`));
    this.dirs.push(d);
    return d;
  }

  /** Removes every dir; returns the ones that still exist afterwards. */
  removeAll(): string[] {
    const failed: string[] = [];
    for (const d of this.dirs.splice(0)) {
      try {
        removeTree(d);
      } catch {
        /* reported below */
      }
      if (existsSync(d)) failed.push(d);
    }
    return failed;
  }
}
