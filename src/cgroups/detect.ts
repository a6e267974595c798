// Which cgroup hierarchies this host has, and which one each controller lives in.
//
// Three layouts exist in the wild:
//   - pure v2: one cgroup2 mount (usually /sys/fs/cgroup) holding every controller;
//   - hybrid: v1 controllers mounted one per hierarchy, plus a cgroup2 mount
//     (/sys/fs/cgroup/unified) that may hold few or no controllers (here: hugetlb);
//   - pure v1: only v1 hierarchies.
// A controller can be bound to one hierarchy only (cgroups(7)), so a controller listed
// in the v2 root's cgroup.controllers is not also on a v1 mount. tsrun picks v2 for
// each controller v2 has and v1 for the rest, instead of refusing hybrid hosts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROLLERS, type Controller } from './types.js';

export type CgroupMode = 'v2' | 'hybrid' | 'v1' | 'none';

export interface CgroupLayout {
  mode: CgroupMode;
  /** the cgroup2 mount and the controllers its root offers */
  v2: { mount: string; controllers: string[] } | null;
  /** v1 controller name (memory, cpu, cpuacct, blkio, ...) -> its hierarchy's mount point */
  v1: Record<string, string>;
  /** which version serves each logical controller; null when neither has it */
  choice: Record<Controller, 'v1' | 'v2' | null>;
}

/** The v2 controller name of each logical controller (freezer is built into v2's core). */
export const V2_NAME: Record<Controller, string | null> = {
  cpu: 'cpu', cpuset: 'cpuset', memory: 'memory', pids: 'pids', io: 'io', freezer: null,
};
/** The v1 hierarchies each logical controller needs (cpu usage lives in cpuacct on v1). */
export const V1_NAMES: Record<Controller, string[]> = {
  cpu: ['cpu', 'cpuacct'], cpuset: ['cpuset'], memory: ['memory'], pids: ['pids'], io: ['blkio'], freezer: ['freezer'],
};

const V1_KNOWN = new Set(['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'freezer', 'devices', 'net_cls', 'net_prio', 'perf_event', 'hugetlb', 'rdma', 'misc']);

function unescape(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mounts of type cgroup/cgroup2 from /proc/self/mountinfo text. */
export function cgroupMounts(mountinfo: string): Array<{ type: 'cgroup' | 'cgroup2'; mountPoint: string; superOptions: string[] }> {
  const out: Array<{ type: 'cgroup' | 'cgroup2'; mountPoint: string; superOptions: string[] }> = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0 || f.length < dash + 4) continue;
    const type = f[dash + 1];
    if (type !== 'cgroup' && type !== 'cgroup2') continue;
    out.push({ type, mountPoint: unescape(f[4]!), superOptions: f[dash + 3]!.split(',') });
  }
  return out;
}

/**
 * Builds the layout from mountinfo text. `readControllers` reads a cgroup2 root's
 * cgroup.controllers (tests point it at fixture files).
 */
export function layoutFrom(mountinfo: string, readControllers: (mount: string) => string): CgroupLayout {
  const mounts = cgroupMounts(mountinfo);
  let v2: CgroupLayout['v2'] = null;
  const v1: Record<string, string> = {};
  for (const m of mounts) {
    if (m.type === 'cgroup2') {
      // Several cgroup2 mounts show the same hierarchy; prefer the conventional places.
      const better = !v2 || m.mountPoint === '/sys/fs/cgroup' || (m.mountPoint === '/sys/fs/cgroup/unified' && v2.mount !== '/sys/fs/cgroup');
      if (better) {
        let controllers: string[] = [];
        try {
          controllers = readControllers(m.mountPoint).trim().split(/\s+/).filter(Boolean);
        } catch {
          /* unreadable: treat as holding no controllers */
        }
        v2 = { mount: m.mountPoint, controllers };
      }
    } else {
      for (const o of m.superOptions) if (V1_KNOWN.has(o) && !v1[o]) v1[o] = m.mountPoint;
    }
  }
  const hasV1 = Object.keys(v1).length > 0;
  const mode: CgroupMode = v2 && !hasV1 ? 'v2' : v2 && hasV1 ? 'hybrid' : hasV1 ? 'v1' : 'none';
  const choice = {} as Record<Controller, 'v1' | 'v2' | null>;
  for (const c of CONTROLLERS) {
    const v2name = V2_NAME[c];
    if (v2 && (v2name ? v2.controllers.includes(v2name) : mode === 'v2')) choice[c] = 'v2';
    else if (V1_NAMES[c].every((n) => v1[n])) choice[c] = 'v1';
    else choice[c] = null;
  }
  // cgroup.freeze exists in every non-root v2 cgroup: with no v1 freezer, v2 freezes.
  if (choice.freezer === null && v2) choice.freezer = 'v2';
  return { mode, v2, v1, choice };
}

let cached: CgroupLayout | undefined;

export function detectCgroups(): CgroupLayout {
  if (!cached) cached = layoutFrom(readFileSync('/proc/self/mountinfo', 'utf8'), (m) => readFileSync(join(m, 'cgroup.controllers'), 'utf8'));
  return cached;
}
