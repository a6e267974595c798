// v1 cpu and cpuacct: CFS bandwidth (cpu.cfs_quota_us / cpu.cfs_period_us), cpu.shares;
// usage is cpuacct.usage, in nanoseconds.
import type { Ctl, Resources } from '../types.js';

export function applyCpu(c: Ctl, cpu: Resources['cpu']): void {
  if (!cpu) return;
  if (cpu.shares !== undefined && cpu.shares !== 0) {
    c.write('cpu.shares', String(cpu.shares), { flag: '--cpu-shares', field: 'linux.resources.cpu.shares', value: String(cpu.shares) });
  }
  const blame = (v: string): { flag: string; field: string; value: string } => ({ flag: '--cpus/--cpu-quota/--cpu-period', field: 'linux.resources.cpu.quota/period', value: v });
  // The period first: a quota is checked against the period already in place.
  if (cpu.period !== undefined && cpu.period !== 0) c.write('cpu.cfs_period_us', String(cpu.period), blame(String(cpu.period)));
  if (cpu.quota !== undefined && cpu.quota !== 0) c.write('cpu.cfs_quota_us', String(cpu.quota < 0 ? -1 : cpu.quota), blame(String(cpu.quota)));
  if (cpu.idle !== undefined && c.exists('cpu.idle')) c.write('cpu.idle', String(cpu.idle), { flag: '--cpu-idle', field: 'linux.resources.cpu.idle', value: String(cpu.idle) });
}

export function cpuUsageNs(cpuacct: Ctl): number {
  return Number((cpuacct.tryRead('cpuacct.usage') ?? '0').trim());
}
