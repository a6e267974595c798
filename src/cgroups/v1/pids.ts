// v1 pids controller: the same files as v2.
import { maxOr, parseMax } from '../convert.js';
import type { Ctl, Resources } from '../types.js';

export function applyPids(c: Ctl, pids: Resources['pids']): void {
  if (pids?.limit === undefined || pids.limit === 0) return;
  c.write('pids.max', maxOr(pids.limit), { flag: '--pids-limit', field: 'linux.resources.pids.limit', value: String(pids.limit) });
}

export function pidsStats(c: Ctl): { current: number; limit: number | null } {
  return { current: Number(c.read('pids.current').trim()), limit: parseMax(c.read('pids.max')) };
}
