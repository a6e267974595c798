// IPv4 address arithmetic and the allocation policy. Pure: the files that hold the
// allocations are in registry.ts.
import { TsrunError } from '../errors.js';

export interface Subnet {
  /** the network address as an unsigned 32-bit integer */
  base: number;
  prefix: number;
}

export function ipToInt(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw new TsrunError('USAGE', `"${ip}" is not an IPv4 address`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw new TsrunError('USAGE', `"${ip}" is not an IPv4 address`);
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseSubnet(cidr: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || prefix > 30 || prefix < 8) {
    throw new TsrunError('USAGE', `--subnet ${cidr}: expected an IPv4 CIDR with a prefix from /8 to /30, e.g. 10.124.0.0/16`);
  }
  const addr = ipToInt(m[1]!);
  const base = (addr & mask(prefix)) >>> 0;
  if (base !== addr) throw new TsrunError('USAGE', `--subnet ${cidr}: host bits are set; did you mean ${intToIp(base)}/${prefix}?`);
  return { base, prefix };
}

export function formatSubnet(s: Subnet): string {
  return `${intToIp(s.base)}/${s.prefix}`;
}

export function contains(s: Subnet, ip: number): boolean {
  return ((ip & mask(s.prefix)) >>> 0) === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

export function broadcast(s: Subnet): number {
  return (s.base | (~mask(s.prefix) >>> 0)) >>> 0;
}

/** docker's choice: the first host address is the gateway. */
export function defaultGateway(s: Subnet): number {
  return s.base + 1;
}

/**
 * The next free host address after `last` (round robin, as docker's IPAM does, so that a
 * just-released address is not reused at once while stale ARP entries may still point
 * at the old MAC). Skips the network, broadcast and gateway addresses.
 */
export function nextFree(s: Subnet, gateway: number, used: Set<number>, last?: number): number | null {
  const first = s.base + 1;
  const end = broadcast(s) - 1;
  const size = end - first + 1;
  const start = last !== undefined && last >= first && last < end ? last + 1 : first;
  for (let i = 0; i < size; i++) {
    const ip = first + ((start - first + i) % size);
    if (ip !== gateway && !used.has(ip)) return ip;
  }
  return null;
}
