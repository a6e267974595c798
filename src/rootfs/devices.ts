// /dev inside the container: a fresh tmpfs holding only the devices a container may use.
// The host's /dev is never visible. Devices are made with mknod (we are real root in
// the init user namespace); access to any other device is refused by the kernel's
// device cgroup later (issue 6).
import { S_IFBLK, S_IFCHR, S_IFIFO } from '../linux/constants.js';
import { EEXIST } from '../linux/errno.js';
import { type Kernel, KernelError } from '../linux/kernel.js';
import type { DeviceSpec } from '../spec/types.js';
import { ensureInRoot } from './in-root.js';

export const DEFAULT_DEVICES: DeviceSpec[] = [
  { type: 'c', path: '/dev/null', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/zero', major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/full', major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/random', major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/urandom', major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/tty', major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

const DEFAULT_LINKS: Array<[string, string]> = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
  ['pts/ptmx', '/dev/ptmx'],
  ['/proc/kcore', '/dev/core'],
];

function split(path: string): { dir: string; name: string } {
  const i = path.lastIndexOf('/');
  return { dir: path.slice(0, i) || '/', name: path.slice(i + 1) };
}

export function createDevice(k: Kernel, rootfd: number, d: DeviceSpec): void {
  const { dir, name } = split(d.path);
  const dirfd = ensureInRoot(k, rootfd, dir, 'dir');
  try {
    const type = d.type === 'b' ? S_IFBLK : d.type === 'p' ? S_IFIFO : S_IFCHR;
    const mode = d.fileMode ?? 0o666;
    try {
      k.mknodat(dirfd, name, type | (mode & 0o777), d.major ?? 0, d.minor ?? 0, `create ${d.path} (${d.major}:${d.minor})`);
    } catch (e) {
      if (!(e instanceof KernelError && e.errno === EEXIST)) throw e;
    }
    // The mode is exact because the setup thread runs with umask 0 (setupRootfs).
    if ((d.uid ?? 0) !== 0 || (d.gid ?? 0) !== 0) k.fchownat(dirfd, name, d.uid ?? 0, d.gid ?? 0, `${d.path} belongs to ${d.uid ?? 0}:${d.gid ?? 0} (linux.devices)`);
  } finally {
    k.close(dirfd);
  }
}

export function setupDev(k: Kernel, rootfd: number, devices: DeviceSpec[], withDefaults: boolean): void {
  const all = withDefaults ? [...DEFAULT_DEVICES, ...devices.filter((d) => !DEFAULT_DEVICES.some((x) => x.path === d.path))] : devices;
  for (const d of all) createDevice(k, rootfd, d);
  if (!withDefaults) return;
  const devfd = ensureInRoot(k, rootfd, '/dev', 'dir');
  try {
    for (const [target, link] of DEFAULT_LINKS) {
      try {
        k.symlinkat(target, devfd, link.slice('/dev/'.length), `${link} -> ${target}`);
      } catch (e) {
        if (!(e instanceof KernelError && e.errno === EEXIST)) throw e;
      }
    }
  } finally {
    k.close(devfd);
  }
}
