// v2 memory controller: memory.max, memory.low, memory.swap.max; usage and OOM kills.
import { maxOr, parseKeyed, parseMax, swapToV2 } from '../convert.js';
import type { Ctl, Resources } from '../types.js';

export function applyMemory(c: Ctl, mem: Resources['memory']): void {
  if (!mem) return;
  if (mem.limit !== undefined && mem.limit !== 0) c.write('memory.max', maxOr(mem.limit), { flag: '--memory', field: 'linux.resources.memory.limit', value: String(mem.limit) });
  if (mem.reservation !== undefined && mem.reservation !== 0) {
    // memory.low is v2's best-effort protection, the closest match to v1's soft limit.
    c.write('memory.low', maxOr(mem.reservation), { flag: '--memory-reservation', field: 'linux.resources.memory.reservation', value: String(mem.reservation) });
  }
  const swap = swapToV2(mem.swap, mem.limit);
  // A kernel without swap accounting has no memory.swap.max; "unlimited" needs no file.
  if (swap !== null && (swap !== 'max' || c.exists('memory.swap.max'))) {
    c.write('memory.swap.max', swap, { flag: '--memory-swap', field: 'linux.resources.memory.swap', value: String(mem.swap) });
  }
}

export function memoryStats(c: Ctl): { usage: number; limit: number | null; inactiveFile: number; oomKills: number } {
  const stat = parseKeyed(c.tryRead('memory.stat') ?? '');
  return {
    usage: Number(c.read('memory.current').trim()),
    limit: parseMax(c.read('memory.max')),
    inactiveFile: stat.inactive_file ?? 0,
    oomKills: memoryOomKills(c),
  };
}

/** memory.events counts oom_kill: processes the OOM killer chose in this cgroup (Linux 4.13+). */
export function memoryOomKills(c: Ctl): number {
  return parseKeyed(c.tryRead('memory.events') ?? '').oom_kill ?? 0;
}
