// v2 cpuset controller. An empty cpuset.cpus means "the parent's", so nothing needs copying.
import type { Ctl, Resources } from '../types.js';

export function applyCpuset(c: Ctl, cpu: Resources['cpu']): void {
  if (cpu?.cpus) c.write('cpuset.cpus', cpu.cpus, { flag: '--cpuset-cpus', field: 'linux.resources.cpu.cpus', value: cpu.cpus });
  if (cpu?.mems) c.write('cpuset.mems', cpu.mems, { flag: '--cpuset-mems', field: 'linux.resources.cpu.mems', value: cpu.mems });
}
