// OCI `linux.resources` (runtime-spec config-linux.md), the part tsrun maps onto cgroup
// files, and what a cgroup reports back.
import type { Kernel } from '../linux/kernel.js';
import type { SpecDeviceRule } from './devices/rules.js';

export interface ThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

export interface Resources {
  memory?: { limit?: number; reservation?: number; swap?: number; swappiness?: number; disableOOMKiller?: boolean };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string; idle?: number };
  pids?: { limit?: number };
  blockIO?: {
    weight?: number;
    throttleReadBpsDevice?: ThrottleDevice[];
    throttleWriteBpsDevice?: ThrottleDevice[];
    throttleReadIOPSDevice?: ThrottleDevice[];
    throttleWriteIOPSDevice?: ThrottleDevice[];
  };
  /** the device allowlist, in order (src/cgroups/devices) */
  devices?: SpecDeviceRule[];
}

/** Logical controllers: what tsrun needs, whichever version provides it. */
export type Controller = 'cpu' | 'cpuset' | 'memory' | 'pids' | 'io' | 'freezer';
export const CONTROLLERS: Controller[] = ['cpu', 'cpuset', 'memory', 'pids', 'io', 'freezer'];

export interface CgroupStats {
  /** total CPU time used by the cgroup, nanoseconds */
  cpuUsageNs: number;
  /** the kernel's raw memory usage (memory.current / memory.usage_in_bytes) */
  memoryUsage: number;
  /** inactive file cache, which docker subtracts from usage */
  memoryInactiveFile: number;
  /** null when unlimited */
  memoryLimit: number | null;
  pidsCurrent: number;
  pidsLimit: number | null;
  blkioRead: number;
  blkioWrite: number;
  oomKills: number;
}

/**
 * Where a write goes and what to blame if the kernel refuses it: the docker flag and
 * the spec field, so the error names something the user typed.
 */
export interface Blame {
  flag: string;
  field: string;
  value: string;
}

/** The I/O a controller file module needs: reads are plain, writes go through the Kernel (traced). */
export interface Ctl {
  k: Kernel;
  dir: string;
  write(file: string, value: string, blame: Blame): void;
  read(file: string): string;
  /** null when the file does not exist (an optional kernel feature) */
  tryRead(file: string): string | null;
  exists(file: string): boolean;
}

export interface CgroupManager {
  /** which hierarchies hold this container's cgroup */
  readonly version: 'v1' | 'v2' | 'hybrid';
  /** the container's cgroup directories on the host, one per hierarchy */
  dirs(): string[];
  /** mkdir the cgroup (and its parents), enable controllers; no limits yet */
  create(): void;
  apply(res: Resources): void;
  addProcess(pid: number): void;
  /** v1 files a single thread can write its tid into (empty when a v2 part is used) */
  threadFiles(): string[];
  /** every pid in the cgroup */
  pids(): number[];
  stats(): CgroupStats;
  oomKills(): number;
  /** kill every process in the cgroup */
  kill(): void;
  /** remove what create() made; processes must be gone (call kill first) */
  destroy(): void;
  exists(): boolean;
}
