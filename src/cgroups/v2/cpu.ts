// v2 cpu controller: cpu.max ("QUOTA PERIOD" in microseconds) and cpu.weight.
import { parseKeyed, sharesToWeight } from '../convert.js';
import type { Ctl, Resources } from '../types.js';

export function applyCpu(c: Ctl, cpu: Resources['cpu']): void {
  if (!cpu) return;
  if (cpu.shares !== undefined && cpu.shares !== 0) {
    c.write('cpu.weight', String(sharesToWeight(cpu.shares)), { flag: '--cpu-shares', field: 'linux.resources.cpu.shares', value: String(cpu.shares) });
  }
  if ((cpu.quota !== undefined && cpu.quota !== 0) || (cpu.period !== undefined && cpu.period !== 0)) {
    // Keep whichever half was not given (tsrun update --cpu-period alone keeps the quota).
    const [curQuota, curPeriod] = (c.tryRead('cpu.max') ?? 'max 100000').trim().split(/\s+/);
    const quota = cpu.quota === undefined || cpu.quota === 0 ? curQuota : cpu.quota < 0 ? 'max' : String(cpu.quota);
    const period = cpu.period === undefined || cpu.period === 0 ? curPeriod : String(cpu.period);
    c.write('cpu.max', `${quota} ${period}`, { flag: '--cpus/--cpu-quota/--cpu-period', field: 'linux.resources.cpu.quota/period', value: `${quota} ${period}` });
  }
  if (cpu.idle !== undefined) c.write('cpu.idle', String(cpu.idle), { flag: '--cpu-idle', field: 'linux.resources.cpu.idle', value: String(cpu.idle) });
}

/** cpu.stat's usage_usec is always there, even without the cpu controller enabled. */
export function cpuUsageNs(c: Ctl): number {
  return (parseKeyed(c.tryRead('cpu.stat') ?? '').usage_usec ?? 0) * 1000;
}
