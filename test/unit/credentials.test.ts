import { describe, expect, it } from 'vitest';
import { PR, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE } from '../../src/linux/constants.js';
import { RecordingKernel } from '../../src/linux/recording.js';
import { applyCredentials } from '../../src/security/credentials.js';
import { CAPABILITIES, DEFAULT_CAPABILITIES } from '../../src/security/capabilities.js';
import type { ProcessSpec } from '../../src/spec/types.js';

const LAST_CAP = 40;

function proc(over: Partial<ProcessSpec> = {}): ProcessSpec {
  const caps = [...DEFAULT_CAPABILITIES];
  return {
    user: { uid: 0, gid: 0 },
    args: ['sh'],
    cwd: '/',
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    ...over,
  };
}

const prctls = (k: RecordingKernel, option: number): number[] =>
  k.calls.flatMap((c, i) => (c.method === 'prctl' && c.args[0] === option ? [i] : []));

const bit = (name: string): bigint => 1n << BigInt(CAPABILITIES[name]!);

describe('applyCredentials', () => {
  it('drops from the bounding set exactly the capabilities not listed, before setresuid', () => {
    const k = new RecordingKernel();
    applyCredentials(k, proc({ user: { uid: 1000, gid: 1000 } }), LAST_CAP);
    const drops = k.calls.filter((c) => c.method === 'prctl' && c.args[0] === PR.PR_CAPBSET_DROP).map((c) => c.args[1] as number);
    const kept = DEFAULT_CAPABILITIES.map((n) => CAPABILITIES[n]!);
    const expected = Array.from({ length: LAST_CAP + 1 }, (_, c) => c).filter((c) => !kept.includes(c));
    expect(drops).toEqual(expected);
    const uid = k.indexOf('setresuid');
    expect(Math.max(...prctls(k, PR.PR_CAPBSET_DROP))).toBeLessThan(uid);
    expect(k.calls.find((c) => c.args[1] === CAPABILITIES.CAP_SYS_ADMIN && c.args[0] === PR.PR_CAPBSET_DROP)?.why).toMatch(/CAP_SYS_ADMIN/);
  });

  it('does not drop beyond the kernel\'s last capability', () => {
    const k = new RecordingKernel();
    applyCredentials(k, proc({ capabilities: {} }), 37);
    const drops = k.calls.filter((c) => c.method === 'prctl' && c.args[0] === PR.PR_CAPBSET_DROP).map((c) => c.args[1]);
    expect(drops).toEqual(Array.from({ length: 38 }, (_, c) => c));
  });

  it('switches setgroups, then setresgid, then setresuid, with the spec\'s ids', () => {
    const k = new RecordingKernel();
    applyCredentials(k, proc({ user: { uid: 1000, gid: 100, additionalGids: [10, 20] } }), LAST_CAP);
    const order = k.methods().filter((m) => ['setgroups', 'setresgid', 'setresuid'].includes(m));
    expect(order).toEqual(['setgroups', 'setresgid', 'setresuid']);
    expect(k.callsOf('setgroups')[0]!.args).toEqual([[10, 20]]);
    expect(k.callsOf('setresgid')[0]!.args).toEqual([100, 100, 100]);
    expect(k.callsOf('setresuid')[0]!.args).toEqual([1000, 1000, 1000]);
  });

  it('clears supplementary groups when none are given', () => {
    const k = new RecordingKernel();
    applyCredentials(k, proc(), LAST_CAP);
    expect(k.callsOf('setgroups')[0]!.args).toEqual([[]]);
  });

  it('sets keepcaps around the uid switch only for a non-root user', () => {
    const user = new RecordingKernel();
    applyCredentials(user, proc({ user: { uid: 1000, gid: 1000 } }), LAST_CAP);
    const keep = user.calls.flatMap((c, i) => (c.method === 'prctl' && c.args[0] === PR.PR_SET_KEEPCAPS ? [{ i, on: c.args[1] }] : []));
    expect(keep.map((x) => x.on)).toEqual([1, 0]);
    expect(keep[0]!.i).toBeLessThan(user.indexOf('setresuid'));
    expect(keep[1]!.i).toBeGreaterThan(user.indexOf('capset'));

    const root = new RecordingKernel();
    applyCredentials(root, proc(), LAST_CAP);
    expect(prctls(root, PR.PR_SET_KEEPCAPS)).toEqual([]);
  });

  it('capset after setresuid, with the sets named in the spec', () => {
    const k = new RecordingKernel();
    applyCredentials(k, proc({
      user: { uid: 1000, gid: 1000 },
      capabilities: { bounding: ['CAP_NET_ADMIN', 'CAP_CHOWN'], effective: ['CAP_NET_ADMIN'], permitted: ['CAP_NET_ADMIN', 'CAP_CHOWN'], inheritable: ['CAP_CHOWN'] },
    }), LAST_CAP);
    const set = k.callsOf('capset');
    expect(set).toHaveLength(1);
    expect(set[0]!.args[0]).toEqual({
      effective: bit('CAP_NET_ADMIN'),
      permitted: bit('CAP_NET_ADMIN') | bit('CAP_CHOWN'),
      inheritable: bit('CAP_CHOWN'),
    });
    expect(k.indexOf('capset')).toBeGreaterThan(k.indexOf('setresuid'));
  });

  it('clears the ambient set, then raises each ambient capability', () => {
    const k = new RecordingKernel();
    applyCredentials(k, proc({
      user: { uid: 1000, gid: 1000 },
      capabilities: { bounding: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'], permitted: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'], inheritable: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'], ambient: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'] },
    }), LAST_CAP);
    const amb = k.calls.filter((c) => c.method === 'prctl' && c.args[0] === PR.PR_CAP_AMBIENT).map((c) => [c.args[1], c.args[2]]);
    expect(amb).toEqual([
      [PR_CAP_AMBIENT_CLEAR_ALL, 0],
      [PR_CAP_AMBIENT_RAISE, CAPABILITIES.CAP_NET_BIND_SERVICE],
      [PR_CAP_AMBIENT_RAISE, CAPABILITIES.CAP_KILL],
    ]);
    // ambient raising needs the capability permitted and inheritable: after capset
    expect(prctls(k, PR.PR_CAP_AMBIENT)[0]).toBeGreaterThan(k.indexOf('capset'));
  });

  it('sets no_new_privs last, and only when asked', () => {
    const k = new RecordingKernel();
    applyCredentials(k, proc({ user: { uid: 1000, gid: 1000 }, noNewPrivileges: true }), LAST_CAP);
    const last = k.calls[k.calls.length - 1]!;
    expect(last).toMatchObject({ method: 'prctl', args: [PR.PR_SET_NO_NEW_PRIVS, 1, 0] });
    expect(prctls(k, PR.PR_SET_NO_NEW_PRIVS)).toHaveLength(1);

    const off = new RecordingKernel();
    applyCredentials(off, proc({ noNewPrivileges: false }), LAST_CAP);
    expect(prctls(off, PR.PR_SET_NO_NEW_PRIVS)).toEqual([]);
  });

  it('a failing setresuid stops before any capability is set', () => {
    const k = new RecordingKernel().failOn('setresuid', 1);
    expect(() => applyCredentials(k, proc({ user: { uid: 1000, gid: 1000 } }), LAST_CAP)).toThrow(/setresuid\(1000, 1000, 1000\): EPERM/);
    expect(k.callsOf('capset')).toEqual([]);
  });
});

describe('capabilities tsrun does not hold', () => {
  it('are named in the error, before any credential changes', () => {
    const k = new RecordingKernel();
    k.capSets = { effective: 0n, permitted: (1n << 24n) - 1n, inheritable: 0n }; // no CAP_SYS_RESOURCE (24) and up
    const p = { user: { uid: 0, gid: 0 }, args: ['true'], cwd: '/', capabilities: { bounding: ['CAP_CHOWN', 'CAP_SYS_RESOURCE'], permitted: ['CAP_CHOWN', 'CAP_SYS_RESOURCE'], effective: ['CAP_CHOWN'] } };
    expect(() => applyCredentials(k, p, 40)).toThrow(/asks for CAP_SYS_RESOURCE, which tsrun itself does not have/);
    expect(k.calls.map((c) => c.method)).toEqual(['capget']);
  });
});
