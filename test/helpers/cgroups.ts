// A test's own cgroup parent (TSRUN_CGROUP_PARENT), and the check that closes it: no
// container cgroup may survive the test, then the parent itself goes.
import { existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { detectCgroups } from '../../src/cgroups/detect.js';
import { until } from './wait.js';

export const cgroupLayout = detectCgroups();

/** Every hierarchy a parent may exist in: the cgroup2 mount and each v1 hierarchy. */
export function hierarchies(): string[] {
  return [...new Set([...(cgroupLayout.v2 ? [cgroupLayout.v2.mount] : []), ...Object.values(cgroupLayout.v1)])];
}

export function newCgroupParent(tag = 'e2e'): string {
  return `tsrun-${tag}-${randomBytes(4).toString('hex')}`;
}

/** Removes PARENT in every hierarchy, and returns the container cgroups that were still under it (a leak). */
export function removeCgroupParent(parent: string): string[] {
  const left: string[] = [];
  for (const h of hierarchies()) {
    const p = join(h, parent);
    if (!existsSync(p)) continue;
    for (const e of readdirSync(p, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      left.push(join(p, e.name));
      try {
        rmdirSync(join(p, e.name));
      } catch {
        /* reported by the caller */
      }
    }
    try {
      rmdirSync(p);
    } catch {
      /* reported by the caller */
    }
  }
  return left;
}

/**
 * The running container of a foreground `tsrun run` (SUB) under tsrun root ROOT, once
 * tsrun has recorded its pid and cgroup. A tsrun that already exited never will: that
 * fails at once.
 */
export async function runningContainer(root: string, sub: { exitCode: number | null }, timeoutMs: number): Promise<{ id: string; pid: number; cgroupsPath: string }> {
  const dir = join(root, 'run', 'containers');
  return until(() => {
    if (sub.exitCode !== null) throw new Error(`tsrun exited (${sub.exitCode}) before its container ran`);
    for (const id of existsSync(dir) ? readdirSync(dir) : []) {
      try {
        const s = JSON.parse(readFileSync(join(dir, id, 'state.json'), 'utf8')) as { id: string; pid?: number; status: string; cgroupsPath?: string };
        if (s.status === 'running' && s.pid && s.cgroupsPath) return { id: s.id, pid: s.pid, cgroupsPath: s.cgroupsPath };
      } catch {
        /* being written */
      }
    }
    return null;
  }, 'the container to be running', timeoutMs);
}
