import { describe, expect, it } from 'vitest';
import { validateSpec } from '../../src/spec/validate.js';
import { defaultSpec } from '../../src/spec/defaults.js';
import { TsrunError } from '../../src/errors.js';

// The cases poke at arbitrary JSON, so the spec is untyped here on purpose.
type Mut = (s: any) => void;

function withChange(change: Mut): unknown {
  const s = JSON.parse(JSON.stringify(defaultSpec()));
  change(s);
  return s;
}

function errorOf(raw: unknown): TsrunError {
  try {
    validateSpec(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(TsrunError);
    return e as TsrunError;
  }
  throw new Error('validateSpec accepted a bad spec');
}

describe('validateSpec', () => {
  it('accepts the default spec and returns it unchanged', () => {
    const s = defaultSpec();
    expect(validateSpec(JSON.parse(JSON.stringify(s)))).toEqual(s);
  });

  it('accepts a spec without a process (create without run)', () => {
    expect(() => validateSpec({ ociVersion: '1.0.2' })).not.toThrow();
  });

  const cases: Array<[string, Mut | unknown, RegExp]> = [
    ['(root)', [1, 2], /\(root\): must be a JSON object/],
    ['ociVersion', (s: any) => { s.ociVersion = '2.0.0'; }, /ociVersion: must be a 1\.x version string, got "2\.0\.0"/],
    ['ociVersion missing', (s: any) => { delete s.ociVersion; }, /ociVersion:/],
    ['process', (s: any) => { s.process = 'sh'; }, /process: must be an object/],
    ['process.args', (s: any) => { s.process.args = []; }, /process\.args: must be a non-empty array/],
    ['process.args type', (s: any) => { s.process.args = ['sh', 1]; }, /process\.args:/],
    ['process.cwd', (s: any) => { s.process.cwd = 'tmp'; }, /process\.cwd: must be an absolute path, got "tmp"/],
    ['process.env', (s: any) => { s.process.env = 'A=1'; }, /process\.env:/],
    ['process.user', (s: any) => { delete s.process.user; }, /process\.user: must be an object/],
    ['process.user.uid', (s: any) => { s.process.user.uid = -1; }, /process\.user\.uid:/],
    ['process.user.gid', (s: any) => { s.process.user.gid = 1.5; }, /process\.user\.gid:/],
    ['process.user.additionalGids', (s: any) => { s.process.user.additionalGids = [1, 'x']; }, /process\.user\.additionalGids:/],
    ['process.capabilities', (s: any) => { s.process.capabilities = ['CAP_KILL']; }, /process\.capabilities: must be an object/],
    ['capability set name', (s: any) => { s.process.capabilities.magic = []; }, /process\.capabilities\.magic: unknown capability set/],
    ['capability name', (s: any) => { s.process.capabilities.effective = ['CAP_FLY']; }, /process\.capabilities\.effective: unknown capability "CAP_FLY"/],
    ['process.rlimits', (s: any) => { s.process.rlimits = {}; }, /process\.rlimits: must be an array/],
    ['rlimit type', (s: any) => { s.process.rlimits = [{ type: 'RLIMIT_FOO', soft: 1, hard: 1 }]; }, /process\.rlimits\[0\]\.type: unknown rlimit "RLIMIT_FOO"/],
    ['rlimit numbers', (s: any) => { s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: '1', hard: 1 }]; }, /process\.rlimits\[0\]: soft and hard must be numbers/],
    ['rlimit soft > hard', (s: any) => { s.process.rlimits.push({ type: 'RLIMIT_NPROC', soft: 10, hard: 5 }); }, /process\.rlimits\[1\]: soft limit 10 is above the hard limit 5/],
    ['root.path', (s: any) => { s.root = { path: 3 }; }, /root\.path: must be a string/],
    ['hostname', (s: any) => { s.hostname = 7; }, /hostname: must be a string/],
    ['mounts', (s: any) => { s.mounts = {}; }, /mounts: must be an array/],
    ['mounts[i]', (s: any) => { s.mounts.push('x'); }, /mounts\[7\]: must be an object/],
    ['mounts[i].destination', (s: any) => { s.mounts[2].destination = 'dev/pts'; }, /mounts\[2\]\.destination: must be an absolute path, got "dev\/pts"/],
    ['mounts[i].options', (s: any) => { s.mounts[0].options = 'ro'; }, /mounts\[0\]\.options:/],
    ['linux', (s: any) => { s.linux = []; }, /linux: must be an object/],
    ['linux.namespaces', (s: any) => { s.linux.namespaces = {}; }, /linux\.namespaces: must be an array/],
    ['namespace type', (s: any) => { s.linux.namespaces.push({ type: 'net' }); }, /linux\.namespaces\[6\]\.type: unknown namespace type "net"/],
    ['namespace twice', (s: any) => { s.linux.namespaces.push({ type: 'pid' }); }, /linux\.namespaces\[6\]: namespace "pid" is listed twice/],
    ['namespace path', (s: any) => { s.linux.namespaces[1].path = 'proc/1/ns/net'; }, /linux\.namespaces\[1\]\.path: must be an absolute path/],
    ['no mount namespace', (s: any) => { s.linux.namespaces = s.linux.namespaces.filter((n: any) => n.type !== 'mount'); }, /linux\.namespaces: has no "mount" namespace: .* add \{"type": "mount"\}/],
    ['maskedPaths', (s: any) => { s.linux.maskedPaths = '/proc/kcore'; }, /linux\.maskedPaths:/],
    ['readonlyPaths', (s: any) => { s.linux.readonlyPaths = [1]; }, /linux\.readonlyPaths:/],
    ['devices', (s: any) => { s.linux.devices = {}; }, /linux\.devices: must be an array/],
    ['device type', (s: any) => { s.linux.devices = [{ path: '/dev/x', type: 'x' }]; }, /linux\.devices\[0\]: needs a path and a type/],
    ['device numbers', (s: any) => { s.linux.devices = [{ path: '/dev/fifo', type: 'p' }, { path: '/dev/x', type: 'c', major: 1 }]; }, /linux\.devices\[1\]: a char or block device needs major and minor/],
    ['rootfsPropagation', (s: any) => { s.linux.rootfsPropagation = 'everywhere'; }, /linux\.rootfsPropagation: unknown propagation "everywhere"/],
    ['sysctl', (s: any) => { s.linux.sysctl = ['net.ipv4.ip_forward=1']; }, /linux\.sysctl:/],
  ];

  it.each(cases)('names the bad field: %s', (_name, change, re) => {
    const raw = typeof change === 'function' ? withChange(change as Mut) : change;
    const e = errorOf(raw);
    expect(e.code).toBe('SPEC_INVALID');
    expect(e.message).toMatch(/^invalid OCI spec: /);
    expect(e.message).toMatch(re);
    expect(e.hint).toMatch(/config\.json/);
    expect(e.exitCode).toBe(125);
  });
});

describe('linux.sysctl: only what a namespace of the container isolates', () => {
  const withSysctl = (sysctl: Record<string, string>, types: string[]) =>
    ({ ociVersion: '1.2.0', linux: { namespaces: ['mount', ...types].map((type) => ({ type })), sysctl } });

  it('accepts net.* with a network namespace and IPC keys with an IPC namespace', () => {
    expect(() => validateSpec(withSysctl({ 'net.ipv4.ip_forward': '1', 'kernel.msgmax': '8192', 'fs.mqueue.msg_max': '10' }, ['network', 'ipc']))).not.toThrow();
  });

  it.each([
    ['vm.swappiness', ['network', 'ipc'], /no namespace isolates/],
    ['kernel.panic', ['network', 'ipc', 'uts'], /no namespace isolates/],
    ['net.ipv4.ip_forward', ['ipc'], /network namespace/],
    ['kernel.shmmax', ['network'], /ipc namespace/],
  ])('refuses %s, naming it, when that would reach the host', (key, types, why) => {
    expect(() => validateSpec(withSysctl({ [key]: '1' }, types as string[]))).toThrow(new RegExp(`linux\\.sysctl\\.${key.replace(/\./g, '\\.')}: .*`));
    expect(() => validateSpec(withSysctl({ [key]: '1' }, types as string[]))).toThrow(why);
  });
});
