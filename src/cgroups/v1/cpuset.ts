// v1 cpuset. A new v1 cpuset cgroup starts with empty cpus and mems, and the kernel
// refuses to attach a task to it (ENOSPC): each level tsrun creates gets its parent's.
import { dirname, join } from 'node:path';
import type { Ctl, Resources } from '../types.js';

export function inheritCpuset(c: Ctl, dir: string): void {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    if (c.read(join(dir, f)).trim() !== '') continue;
    const parent = c.read(join(dirname(dir), f)).trim();
    c.write(join(dir, f), parent, { flag: f === 'cpuset.cpus' ? '--cpuset-cpus' : '--cpuset-mems', field: 'linux.resources.cpu', value: parent });
  }
}

export function applyCpuset(c: Ctl, cpu: Resources['cpu']): void {
  if (cpu?.cpus) c.write('cpuset.cpus', cpu.cpus, { flag: '--cpuset-cpus', field: 'linux.resources.cpu.cpus', value: cpu.cpus });
  if (cpu?.mems) c.write('cpuset.mems', cpu.mems, { flag: '--cpuset-mems', field: 'linux.resources.cpu.mems', value: cpu.mems });
}
