// Checks a parsed config.json before anything touches the kernel, and names the bad
// field: a malformed spec is the user's error (exit 125), not a mount failure later.
import { CAPABILITIES } from '../security/capabilities.js';
import { RLIMIT } from '../linux/constants.js';
import type { Spec } from './types.js';
import { TsrunError } from '../errors.js';

const NS_TYPES = new Set(['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time']);

/** tsrun has no "share the host's mount namespace" mode (runc falls back to chroot, and mounts the spec's mounts on the host). */
export const NO_MOUNT_NS = 'has no "mount" namespace: tsrun mounts the rootfs and pivots into it in the container\'s own mount namespace (in the host\'s, those mounts would land on the host); add {"type": "mount"}';

function bad(field: string, problem: string): never {
  throw new TsrunError('SPEC_INVALID', `invalid OCI spec: ${field}: ${problem}`, {
    hint: 'fix config.json (see https://github.com/opencontainers/runtime-spec/blob/main/config.md)',
  });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

export function validateSpec(raw: unknown): Spec {
  if (!isObj(raw)) bad('(root)', 'must be a JSON object');
  if (typeof raw.ociVersion !== 'string' || !/^1\.\d+\.\d+/.test(raw.ociVersion)) bad('ociVersion', `must be a 1.x version string, got ${JSON.stringify(raw.ociVersion)}`);
  const p = raw.process;
  if (p !== undefined) {
    if (!isObj(p)) bad('process', 'must be an object');
    if (!isStrArray(p.args) || p.args.length === 0) bad('process.args', 'must be a non-empty array of strings');
    if (typeof p.cwd !== 'string' || !p.cwd.startsWith('/')) bad('process.cwd', `must be an absolute path, got ${JSON.stringify(p.cwd)}`);
    if (p.env !== undefined && !isStrArray(p.env)) bad('process.env', 'must be an array of "KEY=value" strings');
    if (!isObj(p.user)) bad('process.user', 'must be an object with uid and gid');
    if (!isUint(p.user.uid)) bad('process.user.uid', 'must be a non-negative integer');
    if (!isUint(p.user.gid)) bad('process.user.gid', 'must be a non-negative integer');
    if (p.user.additionalGids !== undefined && !(Array.isArray(p.user.additionalGids) && p.user.additionalGids.every(isUint))) {
      bad('process.user.additionalGids', 'must be an array of non-negative integers');
    }
    if (p.capabilities !== undefined) {
      if (!isObj(p.capabilities)) bad('process.capabilities', 'must be an object');
      for (const [set, list] of Object.entries(p.capabilities)) {
        if (!['bounding', 'effective', 'inheritable', 'permitted', 'ambient'].includes(set)) bad(`process.capabilities.${set}`, 'unknown capability set');
        if (!isStrArray(list)) bad(`process.capabilities.${set}`, 'must be an array of capability names');
        for (const c of list) if (!(c in CAPABILITIES)) bad(`process.capabilities.${set}`, `unknown capability "${c}"`);
      }
    }
    if (p.rlimits !== undefined) {
      if (!Array.isArray(p.rlimits)) bad('process.rlimits', 'must be an array');
      p.rlimits.forEach((r: unknown, i: number) => {
        if (!isObj(r) || typeof r.type !== 'string' || !(r.type in RLIMIT)) bad(`process.rlimits[${i}].type`, `unknown rlimit ${JSON.stringify(isObj(r) ? r.type : r)}`);
        if (typeof r.soft !== 'number' || typeof r.hard !== 'number') bad(`process.rlimits[${i}]`, 'soft and hard must be numbers');
        if (r.soft > r.hard) bad(`process.rlimits[${i}]`, `soft limit ${r.soft} is above the hard limit ${r.hard}`);
      });
    }
  }
  if (raw.root !== undefined && (!isObj(raw.root) || typeof raw.root.path !== 'string')) bad('root.path', 'must be a string');
  if (raw.hostname !== undefined && typeof raw.hostname !== 'string') bad('hostname', 'must be a string');
  if (raw.mounts !== undefined) {
    if (!Array.isArray(raw.mounts)) bad('mounts', 'must be an array');
    raw.mounts.forEach((m: unknown, i: number) => {
      if (!isObj(m)) bad(`mounts[${i}]`, 'must be an object');
      if (typeof m.destination !== 'string' || !m.destination.startsWith('/')) bad(`mounts[${i}].destination`, `must be an absolute path, got ${JSON.stringify(m.destination)}`);
      if (m.options !== undefined && !isStrArray(m.options)) bad(`mounts[${i}].options`, 'must be an array of strings');
    });
  }
  const l = raw.linux;
  if (l !== undefined) {
    if (!isObj(l)) bad('linux', 'must be an object');
    if (l.namespaces !== undefined) {
      if (!Array.isArray(l.namespaces)) bad('linux.namespaces', 'must be an array');
      const seen = new Set<string>();
      l.namespaces.forEach((n: unknown, i: number) => {
        if (!isObj(n) || typeof n.type !== 'string' || !NS_TYPES.has(n.type)) bad(`linux.namespaces[${i}].type`, `unknown namespace type ${JSON.stringify(isObj(n) ? n.type : n)}`);
        if (seen.has(n.type)) bad(`linux.namespaces[${i}]`, `namespace "${n.type}" is listed twice`);
        seen.add(n.type);
        if (n.path !== undefined && (typeof n.path !== 'string' || !n.path.startsWith('/'))) bad(`linux.namespaces[${i}].path`, 'must be an absolute path');
      });
      if (!seen.has('mount')) bad('linux.namespaces', NO_MOUNT_NS);
    }
    for (const key of ['maskedPaths', 'readonlyPaths'] as const) {
      if (l[key] !== undefined && !isStrArray(l[key])) bad(`linux.${key}`, 'must be an array of paths');
    }
    if (l.devices !== undefined) {
      if (!Array.isArray(l.devices)) bad('linux.devices', 'must be an array');
      l.devices.forEach((d: unknown, i: number) => {
        if (!isObj(d) || typeof d.path !== 'string' || !['c', 'b', 'u', 'p'].includes(d.type as string)) bad(`linux.devices[${i}]`, 'needs a path and a type of c, b, u or p');
        if (d.type !== 'p' && (!isUint(d.major) || !isUint(d.minor))) bad(`linux.devices[${i}]`, 'a char or block device needs major and minor numbers');
      });
    }
    if (l.rootfsPropagation !== undefined && !['private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared', 'unbindable', 'runbindable'].includes(l.rootfsPropagation as string)) {
      bad('linux.rootfsPropagation', `unknown propagation ${JSON.stringify(l.rootfsPropagation)}`);
    }
    if (l.sysctl !== undefined) {
      if (!isObj(l.sysctl)) bad('linux.sysctl', 'must be an object of strings');
      const has = (t: string): boolean => Array.isArray(l.namespaces) && l.namespaces.some((n: unknown) => isObj(n) && n.type === t);
      for (const key of Object.keys(l.sysctl)) {
        const ns = sysctlNamespace(key);
        if (!ns) bad(`linux.sysctl.${key}`, 'no namespace isolates this setting: writing it would change the host');
        if (!has(ns)) bad(`linux.sysctl.${key}`, `belongs to the ${ns} namespace, and the spec gives the container none of its own: writing it would change the host`);
      }
    }
  }
  return raw as unknown as Spec;
}

const IPC_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);

/**
 * Which namespace isolates a sysctl, or null when none does (vm.*, most of kernel.*):
 * such a write would reach the host. The list is the kernel's (and runc's validator).
 */
export function sysctlNamespace(key: string): 'ipc' | 'network' | 'uts' | null {
  if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) return 'ipc';
  if (key.startsWith('net.')) return 'network';
  if (key === 'kernel.hostname' || key === 'kernel.domainname') return 'uts';
  return null;
}
