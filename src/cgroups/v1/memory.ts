// v1 memory controller: memory.limit_in_bytes, memory.memsw.limit_in_bytes (memory plus
// swap, OCI's own meaning of memory.swap), memory.soft_limit_in_bytes.
import { parseKeyed } from '../convert.js';
import type { Ctl, Resources } from '../types.js';

/** v1 reports "unlimited" as PAGE_COUNTER_MAX pages, about 2^63. */
const UNLIMITED = 2 ** 62;

export function applyMemory(c: Ctl, mem: Resources['memory']): void {
  if (!mem) return;
  const limitSet = mem.limit !== undefined && mem.limit !== 0;
  const swapSet = mem.swap !== undefined && mem.swap !== 0 && c.exists('memory.memsw.limit_in_bytes');
  const writeLimit = (): void => c.write('memory.limit_in_bytes', String(mem.limit), { flag: '--memory', field: 'linux.resources.memory.limit', value: String(mem.limit) });
  const writeSwap = (): void => c.write('memory.memsw.limit_in_bytes', String(mem.swap), { flag: '--memory-swap', field: 'linux.resources.memory.swap', value: String(mem.swap) });
  if (limitSet && swapSet) {
    // The kernel keeps limit <= memsw at every moment (EINVAL otherwise): when raising,
    // memsw goes first; when lowering, the limit does.
    const curMemsw = Number(c.read('memory.memsw.limit_in_bytes').trim());
    const newMemsw = mem.swap! < 0 ? Infinity : mem.swap!;
    const newLimit = mem.limit! < 0 ? Infinity : mem.limit!;
    if (newLimit > curMemsw || newMemsw > curMemsw) {
      writeSwap();
      writeLimit();
    } else {
      writeLimit();
      writeSwap();
    }
  } else if (limitSet) {
    writeLimit();
  } else if (swapSet) {
    writeSwap();
  }
  if (mem.reservation !== undefined && mem.reservation !== 0) {
    c.write('memory.soft_limit_in_bytes', String(mem.reservation), { flag: '--memory-reservation', field: 'linux.resources.memory.reservation', value: String(mem.reservation) });
  }
  if (mem.swappiness !== undefined && mem.swappiness <= 100) {
    c.write('memory.swappiness', String(mem.swappiness), { flag: '--memory-swappiness', field: 'linux.resources.memory.swappiness', value: String(mem.swappiness) });
  }
  if (mem.disableOOMKiller) c.write('memory.oom_control', '1', { flag: '--oom-kill-disable', field: 'linux.resources.memory.disableOOMKiller', value: 'true' });
}

export function memoryStats(c: Ctl): { usage: number; limit: number | null; inactiveFile: number; oomKills: number } {
  const stat = parseKeyed(c.tryRead('memory.stat') ?? '');
  const limit = Number(c.read('memory.limit_in_bytes').trim());
  return {
    usage: Number(c.read('memory.usage_in_bytes').trim()),
    limit: limit >= UNLIMITED ? null : limit,
    inactiveFile: stat.total_inactive_file ?? stat.inactive_file ?? 0,
    oomKills: memoryOomKills(c),
  };
}

/**
 * memory.oom_control's oom_kill field (Linux 4.13+) counts processes the OOM killer
 * chose in this cgroup. memory.failcnt only counts hits of the limit, which reclaim
 * usually survives, so it is no sign of a kill.
 */
export function memoryOomKills(c: Ctl): number {
  return parseKeyed(c.tryRead('memory.oom_control') ?? '').oom_kill ?? 0;
}
