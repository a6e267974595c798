import { describe, expect, it } from 'vitest';
import { CLONE } from '../../src/linux/constants.js';
import { ENOENT } from '../../src/linux/errno.js';
import { RecordingKernel } from '../../src/linux/recording.js';
import { enterNamespaces, planNamespaces } from '../../src/namespaces/index.js';
import { TsrunError } from '../../src/errors.js';
import type { Spec } from '../../src/spec/types.js';

const spec = (namespaces: NonNullable<Spec['linux']>['namespaces']): Spec => ({ ociVersion: '1.2.0', linux: { namespaces } });

describe('planNamespaces', () => {
  it('splits fresh namespaces from those joined by path', () => {
    const plan = planNamespaces(spec([{ type: 'pid' }, { type: 'network', path: '/proc/1/ns/net' }, { type: 'mount' }]));
    expect(plan.fresh).toEqual(['pid', 'mount']);
    expect(plan.join).toEqual([{ type: 'network', path: '/proc/1/ns/net' }]);
  });

  it('refuses a user namespace with KERNEL_FEATURE and a hint', () => {
    let err: unknown;
    try {
      planNamespaces(spec([{ type: 'pid' }, { type: 'user' }]));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsrunError);
    expect((err as TsrunError).code).toBe('KERNEL_FEATURE');
    expect((err as TsrunError).message).toMatch(/user namespace/);
    expect((err as TsrunError).hint).toMatch(/"user"/);
  });
});

describe('enterNamespaces', () => {
  const plan = {
    fresh: ['pid', 'uts', 'ipc'] as const,
    join: [
      { type: 'mount' as const, path: '/proc/77/ns/mnt' },
      { type: 'network' as const, path: '/proc/77/ns/net' },
      { type: 'ipc' as const, path: '/proc/77/ns/ipc' },
    ],
  };

  it('unshares CLONE_FS first, opens every path before any setns, joins mount last, then unshares fresh ones', () => {
    const k = new RecordingKernel();
    enterNamespaces(k, { fresh: [...plan.fresh], join: plan.join });
    const m = k.methods();
    expect(k.calls[0]).toMatchObject({ method: 'unshare', args: [CLONE.CLONE_FS] });

    const opens = k.callsOf('open').map((c) => c.args[0]);
    expect(opens).toEqual(['/proc/77/ns/mnt', '/proc/77/ns/net', '/proc/77/ns/ipc']);
    const lastOpen = m.lastIndexOf('open');
    const firstSetns = m.indexOf('setns');
    expect(lastOpen).toBeLessThan(firstSetns);

    const setns = k.callsOf('setns');
    expect(setns.map((c) => c.args[1])).toEqual([CLONE.CLONE_NEWNET, CLONE.CLONE_NEWIPC, CLONE.CLONE_NEWNS]);
    expect(setns.every((c) => c.why?.includes('/proc/77/ns/'))).toBe(true);

    const fresh = k.calls.filter((c, i) => c.method === 'unshare' && i > 0).map((c) => c.args[0]);
    expect(fresh).toEqual([CLONE.CLONE_NEWPID, CLONE.CLONE_NEWUTS, CLONE.CLONE_NEWIPC]);
    expect(m.lastIndexOf('setns')).toBeLessThan(k.indexOf('unshare', () => true, 1));
    expect(k.openFds()).toEqual([]);
  });

  it('setns gets the fd that open returned for the same path', () => {
    const k = new RecordingKernel();
    enterNamespaces(k, { fresh: [], join: plan.join });
    const fdOf = new Map(k.callsOf('open').map((c, i) => [c.args[0] as string, 100 + i]));
    expect(k.callsOf('setns').map((c) => c.args[0])).toEqual([fdOf.get('/proc/77/ns/net'), fdOf.get('/proc/77/ns/ipc'), fdOf.get('/proc/77/ns/mnt')]);
    // and closes each one after the joins
    const closed = k.callsOf('close').map((c) => c.args[0]);
    expect(closed.sort()).toEqual([...fdOf.values()].sort());
    expect(k.methods().indexOf('close')).toBeGreaterThan(k.methods().lastIndexOf('setns'));
  });

  it('a missing namespace path is the spec\'s fault, and nothing is joined', () => {
    const k = new RecordingKernel().failOn('open', ENOENT, (a) => a[0] === '/proc/77/ns/net');
    expect(() => enterNamespaces(k, { fresh: ['pid'], join: plan.join })).toThrow(
      expect.objectContaining({ code: 'SPEC_INVALID', message: expect.stringMatching(/network namespace path "\/proc\/77\/ns\/net".*ENOENT/) }),
    );
    expect(k.callsOf('setns')).toEqual([]);
    expect(k.methods().filter((m) => m === 'unshare')).toHaveLength(1);
  });

  it('closes the namespace fds even when a setns fails', () => {
    const k = new RecordingKernel().failOn('setns', 22);
    expect(() => enterNamespaces(k, { fresh: [], join: plan.join })).toThrow(/setns.*EINVAL/);
    expect(k.openFds()).toEqual([]);
  });
});
