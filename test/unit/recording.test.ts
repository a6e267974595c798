// The recording kernel is what every other unit test stands on: it must know every
// Kernel method, record calls faithfully and fail the way the real kernel fails.
import { describe, expect, it } from 'vitest';
import { KERNEL_METHOD_SYSCALL, KernelError } from '../../src/linux/kernel.js';
import { ExitCalled, RecordingKernel, WHY_INDEX, type KernelMethod } from '../../src/linux/recording.js';
import { LinuxKernel } from '../../src/linux/libc.js';
import { EACCES, ENOENT, EEXIST } from '../../src/linux/errno.js';
import { O, RESOLVE } from '../../src/linux/constants.js';

const methods = Object.keys(KERNEL_METHOD_SYSCALL) as KernelMethod[];

/** Plausible arguments for any method, with the why in its slot. */
function argsFor(m: KernelMethod, why: string): unknown[] {
  const n = WHY_INDEX[m] ?? (RecordingKernel.prototype as unknown as Record<string, (...a: unknown[]) => unknown>)[m]!.length;
  const args: unknown[] = Array.from({ length: n }, (_, i) => i + 1);
  if (m === 'spawn') args[0] = { path: '/bin/true', argv: ['true'], env: [], cwd: '/', setsid: false, stdio: [], preserveFds: 0 };
  if (m === 'capset') args[0] = { effective: 1n, permitted: 1n, inheritable: 0n };
  if (m === 'setgroups') args[0] = [1, 2];
  if (m === 'mkdirat' || m === 'mknodat') args[1] = 'name';
  if (m === 'symlinkat') args.splice(0, 3, 'target', 3, 'name');
  if (m === 'openat2') args[1] = 'path';
  if (WHY_INDEX[m] !== null) args.push(why);
  return args;
}

describe('RecordingKernel', () => {
  it('knows every Kernel method, and so does the real one', () => {
    // KERNEL_METHOD_SYSCALL is typed over keyof Kernel, so it lists every method.
    expect(methods.length).toBeGreaterThan(40);
    expect(Object.keys(WHY_INDEX).sort()).toEqual([...methods].sort());
    for (const m of methods) {
      expect(typeof (RecordingKernel.prototype as unknown as Record<string, unknown>)[m], m).toBe('function');
      expect(typeof (LinuxKernel.prototype as unknown as Record<string, unknown>)[m], m).toBe('function');
    }
  });

  it('records each method by name, with the why split from the arguments', () => {
    for (const m of methods) {
      const k = new RecordingKernel();
      const args = argsFor(m, `why-${m}`);
      try {
        (k as unknown as Record<string, (...a: unknown[]) => unknown>)[m]!(...args);
      } catch (e) {
        // exitNow cannot return; everything else must not throw without failOn
        expect(e, m).toBeInstanceOf(ExitCalled);
      }
      expect(k.calls, m).toHaveLength(1);
      const c = k.calls[0]!;
      expect(c.method).toBe(m);
      if (WHY_INDEX[m] === null) {
        expect(c.why).toBeUndefined();
        expect(c.args).toEqual(args);
      } else {
        expect(c.why).toBe(`why-${m}`);
        expect(c.args).toEqual(args.slice(0, -1));
      }
    }
  });

  it('hands out fresh fds and tracks which are still open', () => {
    const k = new RecordingKernel();
    const a = k.open('/a', O.O_PATH, 0);
    const b = k.openat2(a, 'x', O.O_PATH, 0, RESOLVE.RESOLVE_IN_ROOT);
    const c = k.fsopen('proc');
    const d = k.fsmount(c, 0);
    const e = k.openTree('/src', true);
    expect(new Set([a, b, c, d, e]).size).toBe(5);
    k.close(b);
    expect(k.openFds().sort()).toEqual([a, c, d, e].sort());
    expect(k.pathOf(b)).toBe('/x');
    expect(k.resolveFdPath(`/proc/thread-self/fd/${b}`)).toBe('/x');
    expect(k.resolveFdPath('/etc')).toBe('/etc');
    expect(k.pathOf(e)).toBe('/src');
  });

  it('fails a call with the same KernelError the real one throws, only where the predicate matches', () => {
    const k = new RecordingKernel().failOn('open', EACCES, (a) => a[0] === '/secret', 1);
    expect(k.open('/ok', 0)).toBeGreaterThan(0);
    let err: unknown;
    try {
      k.open('/secret', 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelError);
    const ke = err as KernelError;
    expect(ke.syscall).toBe('open');
    expect(ke.code).toBe('EACCES');
    expect(ke.errno).toBe(EACCES);
    expect(ke.message).toContain('"/secret"');
    expect(k.calls[1]!.error).toBe('EACCES');
    // times = 1: the second attempt goes through
    expect(k.open('/secret', 0)).toBeGreaterThan(0);
    expect(k.callsOf('open')).toHaveLength(3);
  });

  it('with preset paths, openat2 fails with ENOENT for missing ones until they are created', () => {
    const k = new RecordingKernel().presetExisting(['/etc/passwd']);
    const root = k.open('/rootfs', O.O_PATH);
    const flags = RESOLVE.RESOLVE_IN_ROOT;
    expect(k.openat2(root, '/etc', O.O_PATH, 0, flags)).toBeGreaterThan(0);
    expect(() => k.openat2(root, '/data', O.O_PATH, 0, flags)).toThrow(expect.objectContaining({ code: 'ENOENT', errno: ENOENT }));
    const etc = k.openat2(root, '/', O.O_PATH, 0, flags);
    k.mkdirat(etc, 'data', 0o755);
    expect(() => k.mkdirat(etc, 'data', 0o755)).toThrow(expect.objectContaining({ errno: EEXIST }));
    const data = k.openat2(root, '/data', O.O_PATH, 0, flags);
    // relative to an fd inside the root
    k.mknodat(data, 'null', 0o20666, 1, 3);
    expect(k.openat2(data, 'null', O.O_PATH, 0, flags)).toBeGreaterThan(0);
    expect(k.openat2(root, '/data/null', O.O_PATH, 0, flags)).toBeGreaterThan(0);
  });

  it('answers spawn, wait, capget, writeFile and statFd from its settings', () => {
    const k = new RecordingKernel();
    k.capSets = { effective: 5n, permitted: 7n, inheritable: 0n };
    k.waitResult = { pid: 9, code: null, signal: 15 };
    k.kinds.set('/etc/hosts', 'file');
    expect(k.spawn({ path: '/bin/sh', argv: ['sh'], env: [], cwd: '/', setsid: true, stdio: [], preserveFds: 0 })).toBe(4242);
    expect(k.spawn({ path: '/bin/sh', argv: ['sh'], env: [], cwd: '/', setsid: true, stdio: [], preserveFds: 0 })).toBe(4243);
    expect(k.wait(9, false)).toEqual({ pid: 9, code: null, signal: 15 });
    expect(k.capget()).toEqual({ effective: 5n, permitted: 7n, inheritable: 0n });
    k.writeFile('/sys/fs/cgroup/pids/x/pids.max', '10', 'limit');
    expect(k.writes).toEqual([{ path: '/sys/fs/cgroup/pids/x/pids.max', data: '10' }]);
    expect(k.statFd(k.open('/etc/hosts', 0))).toBe('file');
    expect(k.statFd(k.open('/srv', 0))).toBe('dir');
  });
});
