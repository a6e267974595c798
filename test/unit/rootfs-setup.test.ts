// setupRootfs against the recording kernel: the order and the arguments of the calls
// that build a container's filesystem view, without root.
import { describe, expect, it } from 'vitest';
import { MNT, MS, O, RESOLVE, S_IFBLK, S_IFCHR, S_IFMT } from '../../src/linux/constants.js';
import { EPERM } from '../../src/linux/errno.js';
import { RecordingKernel, type RecordedCall } from '../../src/linux/recording.js';
import { setupRootfs } from '../../src/rootfs/setup.js';
import { defaultMounts } from '../../src/spec/defaults.js';
import type { MountSpec, Spec } from '../../src/spec/types.js';

const ROOTFS = '/var/lib/tsrun/c1/rootfs';
const BUNDLE = '/var/lib/tsrun/c1';

function spec(mounts: MountSpec[], extra: Partial<Spec> = {}): Spec {
  return { ociVersion: '1.2.0', root: { path: 'rootfs' }, mounts, ...extra };
}

/** A kernel where the image has /dev, /proc, /sys and /etc, and nothing else. */
function imageKernel(): RecordingKernel {
  return new RecordingKernel().presetExisting(['/dev', '/proc', '/sys', '/etc/hosts']);
}

/** mount calls, with fd paths resolved to what they name inside the root. */
function mounts(k: RecordingKernel): Array<{ src: string | null; dst: string | null; type: string | null; flags: number; data: string | null; i: number }> {
  return k.calls
    .map((c, i) => ({ c, i }))
    .filter(({ c }) => c.method === 'mount')
    .map(({ c, i }) => ({
      src: k.resolveFdPath(c.args[0] as string | null),
      dst: k.resolveFdPath(c.args[1] as string),
      type: c.args[2] as string | null,
      flags: c.args[3] as number,
      data: c.args[4] as string | null,
      i,
    }));
}

const isCall = (c: RecordedCall | undefined, method: string, ...args: unknown[]): boolean =>
  !!c && c.method === method && args.every((a, i) => a === c.args[i]);

describe('setupRootfs', () => {
  it('makes / private first, then binds the rootfs onto itself', () => {
    const k = imageKernel();
    setupRootfs(k, spec([]), ROOTFS, BUNDLE, false);
    expect(k.calls[0]).toMatchObject({ method: 'mount', args: [null, '/', null, MS.MS_REC | MS.MS_PRIVATE, null] });
    expect(k.calls[1]).toMatchObject({ method: 'mount', args: [ROOTFS, ROOTFS, null, MS.MS_BIND | MS.MS_REC, null] });
    expect(k.calls[0]!.why).toMatch(/private/);
  });

  it('mounts an overlay instead of the bind when given layers', () => {
    const k = imageKernel();
    setupRootfs(k, spec([]), ROOTFS, BUNDLE, false, { lower: ['/l/2', '/l/1'], upper: '/c/upper', work: '/c/work' });
    expect(k.calls[0]).toMatchObject({ method: 'mount', args: [null, '/', null, MS.MS_REC | MS.MS_PRIVATE, null] });
    expect(k.calls[1]).toMatchObject({
      method: 'mount',
      args: ['overlay', ROOTFS, 'overlay', 0, 'lowerdir=/l/2:/l/1,upperdir=/c/upper,workdir=/c/work'],
    });
    expect(mounts(k).some((m) => m.src === ROOTFS && m.flags & MS.MS_BIND)).toBe(false);
  });

  it('resolves each destination with openat2(RESOLVE_IN_ROOT) beneath the rootfs fd and mounts through /proc/thread-self/fd', () => {
    const k = imageKernel();
    setupRootfs(k, spec([{ destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755', 'size=65536k'] }]), ROOTFS, BUNDLE, false);
    const rootOpen = k.indexOf('open', (a) => a[0] === ROOTFS);
    expect(rootOpen).toBeGreaterThan(1);
    const rootfd = 100 + k.calls.slice(0, rootOpen).filter((c) => ['open', 'openat2'].includes(c.method)).length;
    expect(k.pathOf(rootfd)).toBe(ROOTFS);
    expect(k.calls[rootOpen]!.args[1]).toBe(O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC);

    const resolveDev = k.indexOf('openat2', (a) => a[0] === rootfd && a[1] === '/dev');
    expect(resolveDev).toBeGreaterThan(rootOpen);
    const how = k.calls[resolveDev]!.args;
    expect((how[4] as number) & RESOLVE.RESOLVE_IN_ROOT).toBeTruthy();
    expect((how[4] as number) & RESOLVE.RESOLVE_NO_MAGICLINKS).toBeTruthy();

    const tmpfs = k.calls.find((c) => c.method === 'mount' && c.args[2] === 'tmpfs')!;
    expect(tmpfs.args[1]).toMatch(/^\/proc\/thread-self\/fd\/\d+$/);
    expect(k.resolveFdPath(tmpfs.args[1] as string)).toBe('/dev');
    expect(tmpfs.args[0]).toBe('tmpfs');
    expect(tmpfs.args[3]).toBe(MS.MS_NOSUID);
    expect(tmpfs.args[4]).toBe('mode=755,size=65536k');
    // the host path of the destination never reaches mount(2)
    expect(k.callsOf('mount').some((c) => String(c.args[1]).startsWith(ROOTFS + '/'))).toBe(false);
    expect(k.openFds()).toEqual([]);
  });

  it('binds a volume, then remounts it read-only, both through fds', () => {
    const k = imageKernel();
    setupRootfs(k, spec([{ destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'ro', 'nosuid'] }]), ROOTFS, BUNDLE, false);
    const src = k.indexOf('open', (a) => a[0] === '/srv/data');
    expect(src).toBeGreaterThan(0);
    expect(k.calls[src]!.args[1]).toBe(O.O_PATH | O.O_CLOEXEC);
    const ms = mounts(k).filter((m) => m.dst === '/data');
    expect(ms).toHaveLength(2);
    expect(ms[0]).toMatchObject({ src: '/srv/data', type: null, flags: MS.MS_BIND | MS.MS_REC });
    expect(k.calls[ms[0]!.i]!.args[0]).toMatch(/^\/proc\/thread-self\/fd\/\d+$/);
    expect(ms[1]).toMatchObject({ src: null, flags: MS.MS_BIND | MS.MS_REMOUNT | MS.MS_RDONLY | MS.MS_NOSUID });
    expect(ms[1]!.i).toBeGreaterThan(ms[0]!.i);
    // the remount re-resolves the destination: the first fd names the directory under the mount
    const reopen = k.calls.slice(ms[0]!.i, ms[1]!.i).filter((c) => c.method === 'openat2' && c.args[1] === '/data');
    expect(reopen).toHaveLength(1);
  });

  it('a plain bind without flags is not remounted', () => {
    const k = imageKernel();
    setupRootfs(k, spec([{ destination: '/etc/hosts', type: 'bind', source: '/srv/hosts', options: ['bind'] }]), ROOTFS, BUNDLE, false);
    const ms = mounts(k).filter((m) => m.dst === '/etc/hosts');
    expect(ms).toEqual([expect.objectContaining({ src: '/srv/hosts', flags: MS.MS_BIND })]);
  });

  it('resolves a relative bind source against the bundle', () => {
    const k = imageKernel();
    setupRootfs(k, spec([{ destination: '/cfg', source: 'conf', options: ['bind'] }]), ROOTFS, BUNDLE, false);
    expect(k.indexOf('open', (a) => a[0] === `${BUNDLE}/conf`)).toBeGreaterThan(0);
    expect(mounts(k).find((m) => m.dst === '/cfg')?.src).toBe(`${BUNDLE}/conf`);
  });

  it('creates missing mount points with mkdirat relative to the parent fd, and an empty file for a file bind', () => {
    const k = imageKernel();
    k.kinds.set('/srv/resolv.conf', 'file');
    setupRootfs(k, spec([
      { destination: '/srv/a/b', type: 'bind', source: '/srv/dir', options: ['rbind'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: '/srv/resolv.conf', options: ['rbind'] },
    ]), ROOTFS, BUNDLE, false);
    const mk = k.callsOf('mkdirat').map((c) => ({ parent: k.pathOf(c.args[0] as number), name: c.args[1] }));
    expect(mk).toEqual([{ parent: '/', name: 'srv' }, { parent: '/srv', name: 'a' }, { parent: '/srv/a', name: 'b' }]);
    // every mkdirat is relative to an fd that came from openat2, never AT_FDCWD or a host path
    for (const c of k.callsOf('mkdirat')) expect(c.args[0]).toBeGreaterThan(0);

    const create = k.calls.find((c) => c.method === 'openat2' && ((c.args[2] as number) & O.O_CREAT) !== 0)!;
    expect(k.pathOf(create.args[0] as number)).toBe('/etc');
    expect(create.args[1]).toBe('resolv.conf');
    expect((create.args[2] as number) & (O.O_EXCL | O.O_NOFOLLOW)).toBe(O.O_EXCL | O.O_NOFOLLOW);
    expect(mounts(k).find((m) => m.dst === '/etc/resolv.conf')?.src).toBe('/srv/resolv.conf');
    expect(k.openFds()).toEqual([]);
  });

  it('defers proc mounts, and anything under them, to the main thread', () => {
    const k = imageKernel();
    const procs: MountSpec[] = [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/proc/sys/fs/binfmt_misc', type: 'tmpfs', source: 'tmpfs' },
    ];
    const r = setupRootfs(k, spec([...procs, { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' }]), ROOTFS, BUNDLE, false);
    expect(r.deferred).toEqual(procs);
    expect(mounts(k).some((m) => m.type === 'proc' || m.dst?.startsWith('/proc'))).toBe(false);
    expect(mounts(k).some((m) => m.dst === '/tmp' && m.type === 'tmpfs')).toBe(true);
  });

  it('creates the default devices on a tmpfs /dev with S_IFCHR and the right major:minor, and the /dev symlinks', () => {
    const k = imageKernel();
    setupRootfs(k, spec(defaultMounts(), {
      linux: { devices: [{ type: 'c', path: '/dev/fuse', major: 10, minor: 229, fileMode: 0o600 }, { type: 'b', path: '/dev/loop9', major: 7, minor: 9 }] },
    }), ROOTFS, BUNDLE, false);
    const nodes = new Map(k.callsOf('mknodat').map((c) => [`${k.pathOf(c.args[0] as number)}/${c.args[1] as string}`, c.args]));
    const expectDev = (path: string, type: number, perm: number, major: number, minor: number): void => {
      const a = nodes.get(path);
      expect(a, path).toBeDefined();
      expect(((a![2] as number) & S_IFMT), path).toBe(type);
      expect(((a![2] as number) & 0o7777), path).toBe(perm);
      expect([a![3], a![4]], path).toEqual([major, minor]);
    };
    expectDev('/dev/null', S_IFCHR, 0o666, 1, 3);
    expectDev('/dev/zero', S_IFCHR, 0o666, 1, 5);
    expectDev('/dev/full', S_IFCHR, 0o666, 1, 7);
    expectDev('/dev/random', S_IFCHR, 0o666, 1, 8);
    expectDev('/dev/urandom', S_IFCHR, 0o666, 1, 9);
    expectDev('/dev/tty', S_IFCHR, 0o666, 5, 0);
    expectDev('/dev/fuse', S_IFCHR, 0o600, 10, 229);
    expectDev('/dev/loop9', S_IFBLK, 0o666, 7, 9);
    expect(nodes.size).toBe(8);
    // the exact modes rely on umask 0, set before anything is created
    const umask0 = k.indexOf('umask', (a) => a[0] === 0);
    expect(umask0).toBeGreaterThanOrEqual(0);
    expect(umask0).toBeLessThan(k.indexOf('mknodat'));
    // devices land on the tmpfs: it is mounted before the first mknodat
    const devTmpfs = mounts(k).find((m) => m.dst === '/dev' && m.type === 'tmpfs')!;
    expect(devTmpfs.i).toBeLessThan(k.indexOf('mknodat'));

    const links = new Map(k.callsOf('symlinkat').map((c) => [`${k.pathOf(c.args[1] as number)}/${c.args[2] as string}`, c.args[0]]));
    expect(Object.fromEntries(links)).toEqual({
      '/dev/fd': '/proc/self/fd',
      '/dev/stdin': '/proc/self/fd/0',
      '/dev/stdout': '/proc/self/fd/1',
      '/dev/stderr': '/proc/self/fd/2',
      '/dev/ptmx': 'pts/ptmx',
      '/dev/core': '/proc/kcore',
    });
    expect(k.openFds()).toEqual([]);
  });

  it('without a tmpfs /dev creates only the spec\'s devices and no symlinks', () => {
    const k = imageKernel();
    setupRootfs(k, spec([], { linux: { devices: [{ type: 'c', path: '/dev/fuse', major: 10, minor: 229 }] } }), ROOTFS, BUNDLE, false);
    expect(k.callsOf('mknodat').map((c) => c.args[1])).toEqual(['fuse']);
    expect(k.callsOf('symlinkat')).toEqual([]);
  });

  it('tolerates devices that already exist (EEXIST)', () => {
    const k = new RecordingKernel().presetExisting(['/dev/null']);
    setupRootfs(k, spec([{ destination: '/dev', type: 'tmpfs', source: 'tmpfs' }]), ROOTFS, BUNDLE, false);
    const nul = k.calls.find((c) => c.method === 'mknodat' && c.args[1] === 'null')!;
    expect(nul.error).toBe('EEXIST');
    expect(k.callsOf('mknodat')).toHaveLength(6);
  });

  it('ends with the pivot_root sequence, then the read-only root and its propagation', () => {
    const k = imageKernel();
    setupRootfs(k, spec(defaultMounts(), { root: { path: 'rootfs', readonly: true }, linux: { rootfsPropagation: 'rslave' } }), ROOTFS, BUNDLE, false);
    const start = k.indexOf('chdir', (a) => a[0] === ROOTFS);
    expect(start).toBeGreaterThan(0);
    // the rootfs fd is closed before we leave the host's root
    expect(k.openFds()).toEqual([]);
    const tail = k.calls.slice(start);
    expect(tail.map((c) => [c.method, ...c.args])).toEqual([
      ['chdir', ROOTFS],
      ['pivotRoot', '.', '.'],
      ['mount', null, '.', null, MS.MS_SLAVE | MS.MS_REC, null],
      ['umount2', '.', MNT.MNT_DETACH],
      ['chdir', '/'],
      ['mount', null, '/', null, MS.MS_BIND | MS.MS_REMOUNT | MS.MS_RDONLY, null],
      ['mount', null, '/', null, MS.MS_SLAVE | MS.MS_REC, null],
    ]);
    // every spec mount happens before the pivot
    expect(k.calls.slice(0, start).filter((c) => c.method === 'mount').length).toBeGreaterThan(5);
  });

  it('a writable root is not remounted', () => {
    const k = imageKernel();
    setupRootfs(k, spec([]), ROOTFS, BUNDLE, false);
    const last = k.calls[k.calls.length - 1]!;
    expect(isCall(last, 'chdir', '/')).toBe(true);
  });

  it('falls back to a read-only bind of /sys when sysfs is refused and the network namespace is shared', () => {
    const k = imageKernel().failOn('mount', EPERM, (a) => a[2] === 'sysfs');
    const sys: MountSpec = { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] };
    setupRootfs(k, spec([sys]), ROOTFS, BUNDLE, true);
    const ms = mounts(k).filter((m) => m.dst === '/sys');
    expect(ms.map((m) => ({ src: m.src, type: m.type, flags: m.flags }))).toEqual([
      { src: 'sysfs', type: 'sysfs', flags: MS.MS_NOSUID | MS.MS_NOEXEC | MS.MS_NODEV | MS.MS_RDONLY },
      { src: '/sys', type: null, flags: MS.MS_BIND | MS.MS_REC },
      { src: null, type: null, flags: MS.MS_BIND | MS.MS_REMOUNT | MS.MS_RDONLY | MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC },
    ]);
    expect(k.calls[ms[0]!.i]!.error).toBe('EPERM');
    expect(k.openFds()).toEqual([]);
  });

  it('with its own network namespace, a sysfs EPERM is an error', () => {
    const k = imageKernel().failOn('mount', EPERM, (a) => a[2] === 'sysfs');
    const sys: MountSpec = { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['ro'] };
    expect(() => setupRootfs(k, spec([sys]), ROOTFS, BUNDLE, false)).toThrow(/mount\(.*EPERM/);
    expect(mounts(k).some((m) => m.src === '/sys')).toBe(false);
    expect(k.callsOf('pivotRoot')).toEqual([]);
    expect(k.openFds()).toEqual([]);
  });

  it('a missing bind source is a ROOTFS error naming the source and the destination', () => {
    const k = imageKernel().failOn('open', 2, (a) => a[0] === '/nope');
    expect(() => setupRootfs(k, spec([{ destination: '/data', source: '/nope', options: ['rbind'] }]), ROOTFS, BUNDLE, false)).toThrow(
      expect.objectContaining({ code: 'ROOTFS', message: expect.stringMatching(/"\/nope" for \/data.*ENOENT/) }),
    );
    expect(k.openFds()).toEqual([]);
  });
});
