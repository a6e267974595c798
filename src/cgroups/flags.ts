// docker's resource flags -> OCI linux.resources, with docker's units and checks
// (docker/cli opts and daemon/daemon_unix.go semantics: sizes in bytes with k/m/g
// suffixes, --cpus as a fraction of CPUs over a 100 ms period, memory-swap = memory
// plus swap, defaulting to twice the memory).
import { statSync } from 'node:fs';
import { TsrunError } from '../errors.js';
import type { Resources, ThrottleDevice } from './types.js';

export interface ResourceFlags {
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuQuota?: string;
  cpuPeriod?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  blkioWeight?: string;
  deviceReadBps?: string[];
  deviceWriteBps?: string[];
  deviceReadIops?: string[];
  deviceWriteIops?: string[];
}

function usage(message: string, hint?: string): TsrunError {
  return new TsrunError('USAGE', message, hint ? { hint } : {});
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** "512m", "1g", "1.5G", "1024", "10kb": binary units, as docker's RAMInBytes. */
export function parseBytes(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw usage(`invalid ${flag} value "${text}": expected a size such as 512m or 1g`);
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
}

function parseInt10(flag: string, text: string, min = -Infinity): number {
  if (!/^-?\d+$/.test(text.trim())) throw usage(`invalid ${flag} value "${text}": expected an integer`);
  const n = Number(text);
  if (n < min) throw usage(`invalid ${flag} value "${text}": must be at least ${min}`);
  return n;
}

/** A block device's major:minor, from the device node the user named. */
export function deviceNumbers(flag: string, path: string): { major: number; minor: number } {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw usage(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'name a block device node, e.g. /dev/sda');
  }
  if (!st.isBlockDevice()) throw usage(`${flag} ${path}: not a block device`);
  // glibc's major()/minor() split of dev_t (sys/sysmacros.h).
  const rdev = BigInt(st.rdev);
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

function throttles(flag: string, items: string[] | undefined, rate: (s: string) => number): ThrottleDevice[] | undefined {
  if (!items?.length) return undefined;
  return items.map((item) => {
    const i = item.lastIndexOf(':');
    if (i <= 0) throw usage(`invalid ${flag} value "${item}": expected DEVICE-PATH:RATE`);
    return { ...deviceNumbers(flag, item.slice(0, i)), rate: rate(item.slice(i + 1)) };
  });
}

/**
 * Maps the flags to OCI resources. `forUpdate`: `tsrun update` leaves out docker's
 * run-time defaults (the doubled swap), so only what was given changes.
 */
export function resourcesFromFlags(f: ResourceFlags, forUpdate = false): Resources | undefined {
  const r: Resources = {};
  const memory: NonNullable<Resources['memory']> = {};
  if (f.memory !== undefined) {
    memory.limit = parseBytes('--memory', f.memory);
    // The daemon's floor: below this the container cannot even start its runtime.
    if (memory.limit > 0 && memory.limit < 6 * 1024 * 1024) throw usage(`invalid --memory value "${f.memory}": the minimum is 6MB`);
  }
  if (f.memorySwap !== undefined) {
    memory.swap = f.memorySwap.trim() === '-1' ? -1 : parseBytes('--memory-swap', f.memorySwap);
    if (memory.limit === undefined && !forUpdate) throw usage('--memory-swap needs --memory', 'both count bytes; --memory-swap is memory plus swap');
    if (memory.swap !== -1 && memory.limit !== undefined && memory.limit > 0 && memory.swap < memory.limit) {
      throw usage(`invalid --memory-swap value "${f.memorySwap}": it must be at least --memory (it is memory plus swap)`);
    }
  } else if (!forUpdate && memory.limit !== undefined && memory.limit > 0) {
    // docker's default: as much swap as memory.
    memory.swap = memory.limit * 2;
  }
  if (f.memoryReservation !== undefined) {
    memory.reservation = parseBytes('--memory-reservation', f.memoryReservation);
    if (memory.limit !== undefined && memory.limit > 0 && memory.reservation > memory.limit) {
      throw usage('--memory-reservation must be smaller than --memory');
    }
  }
  if (Object.keys(memory).length) r.memory = memory;

  const cpu: NonNullable<Resources['cpu']> = {};
  if (f.cpus !== undefined) {
    if (f.cpuQuota !== undefined || f.cpuPeriod !== undefined) throw usage('--cpus conflicts with --cpu-quota and --cpu-period', 'use one or the other, as in docker');
    const n = Number(f.cpus);
    if (!/^\d*\.?\d+$/.test(f.cpus.trim()) || !(n > 0)) throw usage(`invalid --cpus value "${f.cpus}": expected a positive number such as 0.5 or 2`);
    // docker's NanoCPUs over a 100 ms CFS period.
    cpu.period = 100_000;
    cpu.quota = Math.round(n * 100_000);
    if (cpu.quota < 1000) throw usage(`invalid --cpus value "${f.cpus}": the minimum is 0.01`);
  }
  if (f.cpuQuota !== undefined) cpu.quota = parseInt10('--cpu-quota', f.cpuQuota, -1);
  if (f.cpuPeriod !== undefined) cpu.period = parseInt10('--cpu-period', f.cpuPeriod, 0);
  if (f.cpuShares !== undefined) cpu.shares = parseInt10('--cpu-shares', f.cpuShares, 0);
  if (f.cpusetCpus !== undefined) cpu.cpus = f.cpusetCpus;
  if (f.cpusetMems !== undefined) cpu.mems = f.cpusetMems;
  if (Object.keys(cpu).length) r.cpu = cpu;

  if (f.pidsLimit !== undefined) {
    const n = parseInt10('--pids-limit', f.pidsLimit);
    // docker: 0 or -1 means unlimited.
    r.pids = { limit: n <= 0 ? -1 : n };
  }

  const bio: NonNullable<Resources['blockIO']> = {};
  if (f.blkioWeight !== undefined) {
    const w = parseInt10('--blkio-weight', f.blkioWeight, 0);
    if (w !== 0 && (w < 10 || w > 1000)) throw usage(`invalid --blkio-weight value "${f.blkioWeight}": the range is 10 to 1000`);
    bio.weight = w;
  }
  const bps = (flag: string) => (s: string): number => parseBytes(flag, s);
  const iops = (flag: string) => (s: string): number => parseInt10(flag, s, 0);
  const rb = throttles('--device-read-bps', f.deviceReadBps, bps('--device-read-bps'));
  const wb = throttles('--device-write-bps', f.deviceWriteBps, bps('--device-write-bps'));
  const ri = throttles('--device-read-iops', f.deviceReadIops, iops('--device-read-iops'));
  const wi = throttles('--device-write-iops', f.deviceWriteIops, iops('--device-write-iops'));
  if (rb) bio.throttleReadBpsDevice = rb;
  if (wb) bio.throttleWriteBpsDevice = wb;
  if (ri) bio.throttleReadIOPSDevice = ri;
  if (wi) bio.throttleWriteIOPSDevice = wi;
  if (Object.keys(bio).length) r.blockIO = bio;

  return Object.keys(r).length ? r : undefined;
}

/** The commander options, shared by `run` and `update`. */
export const RESOURCE_OPTIONS: Array<[string, string, boolean]> = [
  ['-m, --memory <bytes>', 'memory limit (e.g. 512m)', false],
  ['--memory-swap <bytes>', 'memory plus swap limit; -1 for unlimited swap', false],
  ['--memory-reservation <bytes>', 'memory soft limit', false],
  ['--cpus <number>', 'number of CPUs (e.g. 0.5)', false],
  ['--cpu-quota <us>', 'CFS quota in microseconds per period', false],
  ['--cpu-period <us>', 'CFS period in microseconds', false],
  ['-c, --cpu-shares <n>', 'relative CPU weight', false],
  ['--cpuset-cpus <list>', 'CPUs to run on (0-3, 0,1)', false],
  ['--cpuset-mems <list>', 'memory nodes to use (0-3, 0,1)', false],
  ['--pids-limit <n>', 'maximum number of tasks; -1 for unlimited', false],
  ['--blkio-weight <n>', 'relative block I/O weight (10 to 1000)', false],
  ['--device-read-bps <dev:rate>', 'limit reads from a device (bytes per second)', true],
  ['--device-write-bps <dev:rate>', 'limit writes to a device (bytes per second)', true],
  ['--device-read-iops <dev:rate>', 'limit reads from a device (IO per second)', true],
  ['--device-write-iops <dev:rate>', 'limit writes to a device (IO per second)', true],
];
