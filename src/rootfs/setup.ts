// Builds the container's filesystem view on the setup thread, after it has entered its
// new mount namespace, and ends with pivot_root. The order follows runc's
// rootfs_linux.go: private propagation, bind the rootfs onto itself, the spec's mounts
// (destinations resolved inside the rootfs), /dev, pivot_root, then read-only root.
import { basename, isAbsolute, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { cgroupMounts } from '../cgroups/detect.js';
import { MNT, MS, O } from '../linux/constants.js';
import { EPERM } from '../linux/errno.js';
import { type Kernel, KernelError } from '../linux/kernel.js';
import type { MountSpec, Spec } from '../spec/types.js';
import { TsrunError } from '../errors.js';
import { setupDev } from './devices.js';
import { ensureInRoot, fdPath, openInRoot } from './in-root.js';
import { PROPAGATION, parseMountOptions } from './options.js';
import { deferredMounts } from './deferred.js';
import { mountOverlay, type OverlayLayers } from '../overlay/mount.js';

export interface RootfsResult {
  /** proc mounts (and anything under them), done later by the main thread with pidns= */
  deferred: MountSpec[];
}

export function setupRootfs(k: Kernel, spec: Spec, rootfs: string, bundle: string, sharedNetns: boolean, overlay?: OverlayLayers): RootfsResult {
  const prop = spec.linux?.rootfsPropagation;
  k.mount(null, '/', null, MS.MS_REC | MS.MS_PRIVATE, null, 'make every mount private, so nothing we mount propagates back to the host');
  if (overlay) mountOverlay(k, rootfs, overlay);
  else k.mount(rootfs, rootfs, null, MS.MS_BIND | MS.MS_REC, null, 'bind the rootfs onto itself: pivot_root needs the new root to be a mount point');
  k.umask(0);
  const rootfd = k.open(rootfs, O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC, 0, 'hold the rootfs: every mount destination is resolved beneath this fd');
  const deferred: MountSpec[] = [];
  const mounts = spec.mounts ?? [];
  const later = deferredMounts(mounts);
  try {
    mounts.forEach((m, i) => {
      if (later[i]) deferred.push(m);
      else mountOne(k, rootfd, m, bundle, sharedNetns);
    });
    const devIsTmpfs = mounts.some((m) => m.destination === '/dev' && m.type === 'tmpfs');
    setupDev(k, rootfd, spec.linux?.devices ?? [], devIsTmpfs);
  } finally {
    k.close(rootfd);
  }

  k.chdir(rootfs, 'enter the new root before pivot_root(".", ".")');
  k.pivotRoot('.', '.', 'make the rootfs `/` and stack the host\'s root on top of it, to be detached next');
  k.mount(null, '.', null, MS.MS_SLAVE | MS.MS_REC, null, 'make the old root a slave so its unmount cannot propagate to the host');
  k.umount2('.', MNT.MNT_DETACH, 'detach the host\'s root: from here on the container cannot reach any host path');
  k.chdir('/', 'stand in the new root');
  if (spec.root?.readonly) {
    k.mount(null, '/', null, MS.MS_BIND | MS.MS_REMOUNT | MS.MS_RDONLY, null, 'root.readonly: make the container\'s / read-only');
  }
  if (prop) k.mount(null, '/', null, PROPAGATION[prop]!, null, `linux.rootfsPropagation=${prop}`);
  return { deferred };
}

/** One entry of spec.mounts, with its destination resolved inside the rootfs. */
export function mountOne(k: Kernel, rootfd: number, m: MountSpec, bundle: string, sharedNetns: boolean): void {
  const o = parseMountOptions(m.options);
  const type = m.type ?? (o.bind !== 'none' ? 'bind' : 'none');
  const isBind = o.bind !== 'none' || type === 'bind';
  const why = `${m.destination}: ${isBind ? 'bind ' + (m.source ?? '') : type} (spec mounts[])`;
  if (isBind) {
    const src = resolve(bundle, m.source ?? '');
    let srcfd: number;
    try {
      srcfd = k.open(isAbsolute(m.source ?? '') ? m.source! : src, O.O_PATH | O.O_CLOEXEC, 0, `open the bind source ${src} once, so the mount uses exactly what was checked`);
    } catch (e) {
      throw new TsrunError('ROOTFS', `mount source "${src}" for ${m.destination}: ${(e as Error).message}`, { hint: 'create the source path on the host, or fix the -v / mounts[] entry', cause: e });
    }
    try {
      const isDir = k.statFd(srcfd) === 'dir';
      const dstfd = ensureInRoot(k, rootfd, m.destination, isDir ? 'dir' : 'file');
      try {
        k.mount(fdPath(srcfd), fdPath(dstfd), null, MS.MS_BIND | (o.bind === 'rbind' ? MS.MS_REC : 0), null, why);
      } finally {
        k.close(dstfd);
      }
    } finally {
      k.close(srcfd);
    }
    // A bind mount ignores every flag but MS_REC; read-only and friends need a remount.
    const extra = o.flags & ~MS.MS_REMOUNT;
    if (extra) remount(k, rootfd, m.destination, MS.MS_BIND | MS.MS_REMOUNT | extra, `${m.destination}: apply ${o.readonly ? 'read-only and ' : ''}flags to the bind mount`);
  } else if (type === 'cgroup' && mountCgroupV1Tree(k, rootfd, m, o.flags)) {
    return;
  } else {
    const fstype = type === 'cgroup' ? 'cgroup2' : type;
    const dstfd = ensureInRoot(k, rootfd, m.destination, 'dir');
    try {
      k.mount(m.source ?? fstype, fdPath(dstfd), fstype, o.flags, o.data.length ? o.data.join(',') : null, why);
    } catch (e) {
      // sysfs belongs to a network namespace; without a new one we may not mount a
      // fresh instance, so bind the host's read-only (as runc does).
      if (type === 'sysfs' && sharedNetns && e instanceof KernelError && e.errno === EPERM) {
        k.mount('/sys', fdPath(dstfd), null, MS.MS_BIND | MS.MS_REC, null, '/sys: no own network namespace, so bind the host\'s sysfs');
        k.close(dstfd);
        remount(k, rootfd, m.destination, MS.MS_BIND | MS.MS_REMOUNT | MS.MS_RDONLY | MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC, '/sys read-only');
        return;
      }
      k.close(dstfd);
      throw e;
    }
    k.close(dstfd);
  }
  for (const p of o.propagation) remount(k, rootfd, m.destination, p, `${m.destination}: propagation`);
}

function remount(k: Kernel, rootfd: number, dest: string, flags: number, why: string): void {
  // Re-resolve: the fd we mounted onto still names the directory *under* the new mount.
  const fd = openInRoot(k, rootfd, dest);
  if (fd < 0) throw new TsrunError('ROOTFS', `mount destination ${dest} vanished during setup`);
  try {
    k.mount(null, fdPath(fd), null, flags, null, why);
  } finally {
    k.close(fd);
  }
}

/**
 * /sys/fs/cgroup on a host with v1 hierarchies (v1 or hybrid): like the host's, a tmpfs
 * holding one mount per hierarchy, each showing the container's own cgroup as its root
 * (the setup thread is inside it and has made the cgroup namespace). A lone cgroup2
 * mount would show only what v2 holds there (on a hybrid host: hugetlb). Returns false
 * on a pure v2 host, where the caller mounts cgroup2 itself.
 */
function mountCgroupV1Tree(k: Kernel, rootfd: number, m: MountSpec, flags: number): boolean {
  let mounts;
  try {
    mounts = cgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8')).filter((c) => c.mountPoint.startsWith('/sys/fs/cgroup/'));
  } catch {
    return false;
  }
  if (!mounts.some((c) => c.type === 'cgroup')) return false;
  const dstfd = ensureInRoot(k, rootfd, m.destination, 'dir');
  try {
    k.mount('tmpfs', fdPath(dstfd), 'tmpfs', MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC, 'mode=755', `${m.destination}: a tmpfs to hold one mount per cgroup hierarchy, as on the host`);
  } finally {
    k.close(dstfd);
  }
  const keep = flags & (MS.MS_RDONLY | MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC | MS.MS_RELATIME);
  for (const c of mounts) {
    const name = basename(c.mountPoint);
    const dir = ensureInRoot(k, rootfd, `${m.destination}/${name}`, 'dir');
    try {
      const opts = c.type === 'cgroup' ? c.superOptions.filter((o) => o !== 'rw' && o !== 'ro').join(',') : null;
      k.mount('cgroup', fdPath(dir), c.type, keep, opts || null, `${m.destination}/${name}: the ${name} hierarchy, rooted at the container's own cgroup`);
    } finally {
      k.close(dir);
    }
  }
  if (flags & MS.MS_RDONLY) remount(k, rootfd, m.destination, MS.MS_REMOUNT | MS.MS_RDONLY | MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC, `${m.destination}: read-only`);
  return true;
}
