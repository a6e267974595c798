import { readFileSync } from 'node:fs';
// Capability names and numbers (include/uapi/linux/capability.h).
export const CAPABILITIES: Record<string, number> = {
  CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_DAC_READ_SEARCH: 2, CAP_FOWNER: 3, CAP_FSETID: 4, CAP_KILL: 5,
  CAP_SETGID: 6, CAP_SETUID: 7, CAP_SETPCAP: 8, CAP_LINUX_IMMUTABLE: 9, CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11, CAP_NET_ADMIN: 12, CAP_NET_RAW: 13, CAP_IPC_LOCK: 14, CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16, CAP_SYS_RAWIO: 17, CAP_SYS_CHROOT: 18, CAP_SYS_PTRACE: 19, CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21, CAP_SYS_BOOT: 22, CAP_SYS_NICE: 23, CAP_SYS_RESOURCE: 24, CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26, CAP_MKNOD: 27, CAP_LEASE: 28, CAP_AUDIT_WRITE: 29, CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31, CAP_MAC_OVERRIDE: 32, CAP_MAC_ADMIN: 33, CAP_SYSLOG: 34, CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36, CAP_AUDIT_READ: 37, CAP_PERFMON: 38, CAP_BPF: 39, CAP_CHECKPOINT_RESTORE: 40,
};

/** Docker's default set (moby oci/caps/defaults.go): what a root container keeps. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const ALL_CAPABILITIES = Object.keys(CAPABILITIES);

/** The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap). */
export function lastCap(read: () => string): number {
  try {
    return Number.parseInt(read().trim(), 10);
  } catch {
    return 40;
  }
}

export function capMask(names: string[] | undefined, last = 63): bigint {
  let m = 0n;
  for (const n of names ?? []) {
    const bit = CAPABILITIES[n];
    if (bit === undefined) throw new Error(`unknown capability "${n}"`);
    if (bit <= last) m |= 1n << BigInt(bit);
  }
  return m;
}

export function capNames(mask: bigint): string[] {
  return Object.entries(CAPABILITIES)
    .filter(([, bit]) => (mask >> BigInt(bit)) & 1n)
    .map(([n]) => n);
}

/** Normalizes a docker-style name (`net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN`) or throws. */
export function normalizeCap(name: string): string {
  const up = name.toUpperCase();
  if (up === 'ALL') return 'ALL';
  const full = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!(full in CAPABILITIES)) throw new Error(`unknown capability "${name}"`);
  return full;
}

/**
 * The capabilities tsrun itself may hand on: its bounding set. "All capabilities"
 * (--privileged, --cap-add ALL) means these, as Docker's means all the daemon holds;
 * asking capset(2) for more fails with EPERM.
 */
export function heldCapabilities(status: string = readSelfStatus()): string[] {
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status);
  return m ? capNames(BigInt('0x' + m[1])) : ALL_CAPABILITIES;
}

function readSelfStatus(): string {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return '';
  }
}
