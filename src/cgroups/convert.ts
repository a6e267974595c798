// Unit conversions between v1 semantics (which OCI and docker use) and v2 files.
import { TsrunError } from '../errors.js';

/**
 * cpu.shares (2..262144, default 1024) -> cpu.weight (1..10000, default 100). The same
 * linear map runc and crun use, so a container gets the same weight under any runtime.
 */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

/** blkio.weight (10..1000) -> io.weight (1..10000), linear like runc. */
export function blkioWeightToIoWeight(w: number): number {
  if (w === 0) return 0;
  return Math.floor(1 + ((w - 10) * 9999) / 990);
}

/**
 * OCI memory.swap is v1's memsw: memory *plus* swap. v2's memory.swap.max is swap
 * alone. Returns the memory.swap.max value, or null when nothing is to be written.
 */
export function swapToV2(swap: number | undefined, limit: number | undefined): string | null {
  if (swap === undefined || swap === 0) return null;
  if (swap === -1) return 'max';
  if (limit === undefined || limit <= 0) {
    throw new TsrunError('CGROUP', '--memory-swap: a swap limit needs a memory limit', { hint: 'set --memory as well' });
  }
  if (swap < limit) {
    throw new TsrunError('CGROUP', '--memory-swap: the memory+swap limit must be at least the memory limit', { hint: '--memory-swap is memory plus swap, as in docker' });
  }
  return String(swap - limit);
}

/** "max" or a number, as v2 writes limits. */
export function maxOr(n: number | undefined | null): string {
  return n === undefined || n === null || n < 0 ? 'max' : String(n);
}

/** Parses a v2 limit file ("max" or a number). */
export function parseMax(text: string): number | null {
  const t = text.trim();
  return t === 'max' ? null : Number(t);
}

/** Parses flat-keyed files: "key value\n..." (memory.stat, cpu.stat, memory.events, memory.oom_control). */
export function parseKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}
