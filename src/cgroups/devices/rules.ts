// OCI `linux.resources.devices`: the device allowlist (runtime-spec config-linux.md,
// "Allowed Device"). Entries apply in the listed order, so a later entry overrides an
// earlier one it overlaps: the usual list starts by denying everything and then allows
// the few devices a container needs.
import { TsrunError } from '../../errors.js';

export type DeviceAccess = 'r' | 'w' | 'm';

/** One normalised rule: `type` 'a' is every type; null major/minor is a wildcard. */
export interface DeviceRule {
  allow: boolean;
  type: 'a' | 'c' | 'b';
  major: number | null;
  minor: number | null;
  /** a non-empty subset of "rwm", in that order */
  access: string;
}

/** The spec's shape, as written in config.json (major/minor -1 or absent = any). */
export interface SpecDeviceRule {
  allow: boolean;
  type?: string;
  major?: number | null;
  minor?: number | null;
  access?: string;
}

const rule = (allow: boolean, type: DeviceRule['type'], major: number | null, minor: number | null, access = 'rwm'): DeviceRule => ({ allow, type, major, minor, access });

/**
 * What `tsrun run` allows by default, the same set as Docker's (moby's default spec):
 * any node may be created (mknod) but not opened, except the standard ones /dev holds
 * and the pty and tun devices.
 */
export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  rule(false, 'a', null, null),
  // CAP_MKNOD is a default capability; creating a node is harmless as long as opening
  // it is refused, and images ship device nodes that must unpack.
  rule(true, 'c', null, null, 'm'),
  rule(true, 'b', null, null, 'm'),
  rule(true, 'c', 1, 3), // /dev/null
  rule(true, 'c', 1, 5), // /dev/zero
  rule(true, 'c', 1, 7), // /dev/full
  rule(true, 'c', 1, 8), // /dev/random
  rule(true, 'c', 1, 9), // /dev/urandom
  rule(true, 'c', 5, 0), // /dev/tty
  rule(true, 'c', 5, 1), // /dev/console
  rule(true, 'c', 5, 2), // /dev/ptmx
  rule(true, 'c', 136, null), // /dev/pts/N: Unix98 pty slaves (devices.txt, major 136-143)
  rule(true, 'c', 10, 200), // /dev/net/tun
];

/**
 * The devices every container gets whatever its list says (config-linux.md "Default
 * Devices": the runtime MUST supply null, zero, full, random, urandom, tty and ptmx;
 * pty slaves for a terminal). Engines such as podman and containerd send a deny-all and
 * rely on the runtime to allow these, as runc does by appending its own allowlist.
 */
export const RUNTIME_DEVICE_RULES: readonly DeviceRule[] = [
  rule(true, 'c', 1, 3), rule(true, 'c', 1, 5), rule(true, 'c', 1, 7), rule(true, 'c', 1, 8), rule(true, 'c', 1, 9),
  rule(true, 'c', 5, 0), rule(true, 'c', 5, 2), rule(true, 'c', 136, null),
];

/** The spec's rules followed by the runtime's defaults, minus those the list already allows. */
export function withRuntimeDevices(rules: readonly DeviceRule[]): DeviceRule[] {
  // r's devices include d's: a wildcard covers a number, a number covers only itself
  const includes = (r: DeviceRule, d: DeviceRule): boolean =>
    (r.type === 'a' || r.type === d.type) && (r.major === null || r.major === d.major) && (r.minor === null || r.minor === d.minor);
  const overlaps = (r: DeviceRule, d: DeviceRule): boolean =>
    (r.type === 'a' || r.type === d.type) && (r.major === null || d.major === null || r.major === d.major) && (r.minor === null || d.minor === null || r.minor === d.minor);
  const allowed = (d: DeviceRule): boolean => {
    const i = rules.findLastIndex((r) => r.allow && includes(r, d) && [...d.access].every((a) => r.access.includes(a)));
    return i >= 0 && !rules.slice(i + 1).some((r) => !r.allow && overlaps(r, d));
  };
  return [...rules, ...RUNTIME_DEVICE_RULES.filter((d) => !allowed(d))];
}

/** --privileged: every device, as Docker does. */
export const PRIVILEGED_DEVICE_RULES: readonly DeviceRule[] = [rule(true, 'a', null, null)];

function bad(where: string, why: string): TsrunError {
  return new TsrunError('SPEC_INVALID', `invalid OCI spec: ${where}: ${why}`, { hint: 'each entry is {"allow": true|false, "type": "a"|"c"|"b", "major": N, "minor": N, "access": "rwm"}' });
}

function num(v: unknown, where: string): number | null {
  if (v === undefined || v === null || v === -1) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw bad(where, 'must be a non-negative integer below 2^31, or -1 for any');
  return v;
}

/** Validates the spec's list (naming the bad field) and normalises it. */
export function normalizeDeviceRules(list: unknown, field = 'linux.resources.devices'): DeviceRule[] {
  if (!Array.isArray(list)) throw bad(field, 'must be an array');
  return list.map((raw: unknown, i): DeviceRule => {
    const where = `${field}[${i}]`;
    if (typeof raw !== 'object' || raw === null) throw bad(where, 'must be an object');
    const r = raw as Record<string, unknown>;
    if (typeof r.allow !== 'boolean') throw bad(`${where}.allow`, 'must be true or false');
    const type = r.type ?? 'a';
    if (type !== 'a' && type !== 'c' && type !== 'b') throw bad(`${where}.type`, `"${String(type)}" is not a, c or b`);
    const accessRaw = r.access ?? 'rwm';
    if (typeof accessRaw !== 'string' || !/^[rwm]*$/.test(accessRaw)) throw bad(`${where}.access`, 'must be made of r, w and m');
    // runc reads an empty access as "rwm"; keep the same meaning.
    const access = accessRaw === '' ? 'rwm' : ['r', 'w', 'm'].filter((c) => accessRaw.includes(c)).join('');
    return { allow: r.allow, type, major: num(r.major, `${where}.major`), minor: num(r.minor, `${where}.minor`), access };
  });
}

/** Back to the spec's shape (-1 never written: absent means any). */
export function toSpecRule(r: DeviceRule): SpecDeviceRule {
  return { allow: r.allow, type: r.type, ...(r.major !== null ? { major: r.major } : {}), ...(r.minor !== null ? { minor: r.minor } : {}), access: r.access };
}

/** True for a rule that matches every device and every access. */
export function isAllRule(r: DeviceRule): boolean {
  return r.type === 'a' && r.major === null && r.minor === null && r.access === 'rwm';
}

/** The v1 `devices.allow`/`devices.deny` line: "c 1:3 rwm", "b *:* m", or "a". */
export function v1Line(r: DeviceRule): string {
  if (isAllRule(r)) return 'a';
  const n = (x: number | null): string => (x === null ? '*' : String(x));
  return `${r.type} ${n(r.major)}:${n(r.minor)} ${r.access}`;
}

/**
 * Whether a rule list lets a process do `access` on a device, by the spec's ordering:
 * the last rule that matches decides, and with none the device is allowed (a fresh
 * cgroup starts from its parent's allow-all). An allow rule must cover every requested
 * access; a deny rule matches when it shares any. Both the v1 writer and the eBPF
 * program are tested against this.
 */
export function decide(rules: readonly DeviceRule[], type: 'c' | 'b', major: number, minor: number, access: string): boolean {
  for (let i = rules.length - 1; i >= 0; i--) {
    const r = rules[i]!;
    if (r.type !== 'a' && r.type !== type) continue;
    if (r.major !== null && r.major !== major) continue;
    if (r.minor !== null && r.minor !== minor) continue;
    const want = [...access];
    if (r.allow ? want.every((a) => r.access.includes(a)) : want.some((a) => r.access.includes(a))) return r.allow;
  }
  return true;
}
