// The part of the rootfs that only exists once the container's PID 1 does.
//
// procfs shows the PID namespace of the task that mounts it. The setup thread is not
// inside the new PID namespace (unshare(CLONE_NEWPID) only moves a thread's future
// children), so a proc it mounted would show the host's processes. And the namespace
// cannot be named (/proc/PID/ns/pid_for_children reads ENOENT) until it has a PID 1.
// So: once the gated PID 1 exists, the main thread builds proc with the new mount API
// and `pidns=/proc/PID/ns/pid` (Linux 6.15+), enters the container's mount namespace
// for a moment to attach it, applies the masked and read-only paths that live under
// it, and returns to the host's mount namespace.
import { spawnSync } from 'node:child_process';
import { lstatSync, realpathSync, statSync } from 'node:fs';
import { tracer } from '../trace/tracer.js';
import { CLONE, MNT, MOUNT_ATTR, MS, O } from '../linux/constants.js';
import { EINVAL } from '../linux/errno.js';
import { type Kernel, KernelError } from '../linux/kernel.js';
import type { MountSpec } from '../spec/types.js';
import { TsrunError } from '../errors.js';
import { parseMountOptions } from './options.js';
import { deferredMounts, isUnder } from './deferred.js';
import { withNamespacesOf } from '../namespaces/hop.js';

function mountAttrs(flags: number): number {
  let a = 0;
  if (flags & MS.MS_RDONLY) a |= MOUNT_ATTR.MOUNT_ATTR_RDONLY;
  if (flags & MS.MS_NOSUID) a |= MOUNT_ATTR.MOUNT_ATTR_NOSUID;
  if (flags & MS.MS_NODEV) a |= MOUNT_ATTR.MOUNT_ATTR_NODEV;
  if (flags & MS.MS_NOEXEC) a |= MOUNT_ATTR.MOUNT_ATTR_NOEXEC;
  return a;
}

/** Whether this kernel's procfs takes pidns= (Linux 6.15+); TSRUN_PROC_HELPER=1 forces the fallback. */
let procPidnsWorks: boolean | undefined = process.env.TSRUN_PROC_HELPER === '1' ? false : undefined;

/**
 * Returns a detached procfs mount for the container's PID namespace, or -1 when this
 * kernel cannot do that (no pidns= option): the caller then uses mountProcWithHelper.
 */
function makeProc(k: Kernel, pid: number, m: MountSpec): number {
  if (procPidnsWorks === false) return -1;
  const o = parseMountOptions(m.options);
  const fsfd = k.fsopen('proc', 'a procfs context; it must show the container\'s PID namespace, not ours');
  try {
    try {
      k.fsconfigString(fsfd, 'pidns', `/proc/${pid}/ns/pid`, 'tie this procfs to the container\'s PID namespace: PID 1 is its command');
    } catch (e) {
      if (e instanceof KernelError && e.errno === EINVAL) {
        procPidnsWorks = false;
        return -1;
      }
      throw e;
    }
    procPidnsWorks = true;
    k.fsconfigString(fsfd, 'source', m.source ?? 'proc', 'the name mount(8) shows for it');
    for (const d of o.data) {
      const [key, value] = d.split('=', 2) as [string, string | undefined];
      k.fsconfigString(fsfd, key, value ?? null, `proc option ${d}`);
    }
    k.fsconfigCreate(fsfd);
    return k.fsmount(fsfd, mountAttrs(o.flags), 'a detached procfs mount');
  } finally {
    k.close(fsfd);
  }
}

/**
 * The fallback for kernels without procfs's pidns= option (before 6.15). A procfs
 * shows the PID namespace of the task that mounts it, and no thread of tsrun is in the
 * container's. So the main thread points its *children* at that namespace
 * (setns(CLONE_NEWPID) affects only children), enters the container's mount namespace
 * while keeping the host's root (chroot to an fd of it), and runs the host's mount(8).
 * That process is inside the PID namespace; the proc it mounts is the container's. The
 * target is reached through /proc/PID/root, the container's root as the kernel sees it.
 */
function mountProcWithHelper(k: Kernel, pid: number, m: MountSpec): void {
  const o = parseMountOptions(m.options);
  const opts = [o.flags & MS.MS_NOSUID ? 'nosuid' : '', o.flags & MS.MS_NODEV ? 'nodev' : '', o.flags & MS.MS_NOEXEC ? 'noexec' : '', ...o.data].filter(Boolean).join(',');
  const dest = `/proc/${pid}/root${m.destination}`;
  const hostRoot = k.open('/', O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC, 0, 'hold the host\'s root, to run the host\'s mount(8) from inside the container\'s namespaces');
  try {
    withNamespacesOf(k, pid, ['pid', 'mount'], () => {
      k.fchdir(hostRoot, 'stand in the host\'s root');
      k.chroot('.', 'keep the host\'s root (and its mount binary) while in the container\'s mount namespace');
      const t0 = tracer.on ? tracer.now() : undefined;
      const r = spawnSync('mount', ['--no-canonicalize', '-t', 'proc', ...(opts ? ['-o', opts] : []), m.source ?? 'proc', dest], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      tracer.step('syscall', 'spawn', `mount -t proc proc ${dest}`, 'this kernel has no procfs pidns= option: a helper inside the container\'s PID namespace mounts its /proc', t0, r.status === 0 ? '0' : `exit ${r.status}`);
      if (r.status !== 0) throw new TsrunError('KERNEL_FEATURE', `mounting the container's /proc with the host's mount(8) failed: ${(r.stderr || r.error?.message || '').trim()}`, { hint: 'tsrun needs util-linux mount on the host when the kernel is older than 6.15' });
    });
  } finally {
    k.close(hostRoot);
  }
}

function exists(path: string): 'dir' | 'file' | null {
  try {
    return statSync(path).isDirectory() ? 'dir' : 'file';
  } catch {
    return null;
  }
}

export interface FinishPlan {
  deferred: MountSpec[];
  /** mountsAfterProc: made again once /proc is there */
  remake: MountSpec[];
  maskedPaths: string[];
  readonlyPaths: string[];
}

/**
 * The spec's mounts that come after its first proc mount but were made before it (by
 * the setup thread). The runtime-spec has mounts made in the listed order, and the
 * mount table (/proc/self/mountinfo) lists them by when each mount was created; /proc
 * can only be created once the container's PID 1 exists. So these are made again after
 * it: a clone of each outermost one (with what is mounted under it) replaces the
 * original, and the clones are created in the spec's order.
 */
export function mountsAfterProc(mounts: MountSpec[]): MountSpec[] {
  const first = mounts.findIndex((m) => m.type === 'proc');
  if (first < 0) return [];
  const deferred = deferredMounts(mounts);
  return mounts.filter((_, i) => i > first && !deferred[i]);
}

/** See mountsAfterProc. Runs inside the container's mount namespace, so paths resolve in its root. */
function remakeInOrder(k: Kernel, later: MountSpec[]): void {
  // Where the setup thread mounted each: a destination that is a symlink in the image
  // was followed inside the rootfs.
  const at = later.map((m) => realpathSync(m.destination));
  // A clone carries what is mounted under it; of mounts stacked on one path, the first.
  const tops = at.filter((p, i) => !at.some((o, j) => j !== i && (o === p ? j < i : isUnder(p, o))));
  // An unbindable mount cannot be cloned (and a recursive clone leaves it out): private
  // for the clone, unbindable again after.
  const unbindable = later.flatMap((m, i) => {
    const u = (m.options ?? []).find((o) => o === 'unbindable' || o === 'runbindable');
    return u ? [{ at: at[i]!, rec: u === 'runbindable' ? MS.MS_REC : 0 }] : [];
  });
  for (const u of unbindable) k.mount(null, u.at, null, MS.MS_PRIVATE | u.rec, null, `${u.at}: private for a moment, so it can be cloned`);
  const clones: number[] = [];
  try {
    for (const p of tops) clones.push(k.openTree(p, true, `${p}: clone it (and its submounts) so it is listed after /proc, in the spec's order`));
    tops.forEach((p, i) => {
      k.umount2(p, MNT.MNT_DETACH, `${p}: detach the original`);
      k.moveMount(clones[i]!, -100, p, `${p}: attach the clone in its place`);
    });
  } finally {
    for (const fd of clones) k.close(fd);
  }
  for (const u of unbindable) k.mount(null, u.at, null, MS.MS_UNBINDABLE | u.rec, null, `${u.at}: unbindable again`);
}

export function finishRootfs(k: Kernel, pid: number, plan: FinishPlan): void {
  // Everything that needs the host's view is opened before entering the container.
  const detached = plan.deferred.map((m) => {
    if (m.type === 'proc') return makeProc(k, pid, m);
    const o = parseMountOptions(m.options);
    if (o.bind !== 'none' || m.type === 'bind') return k.openTree(m.source ?? '', o.bind === 'rbind', `${m.destination}: clone the bind source from the host`);
    return -1;
  });
  try {
    plan.deferred.forEach((m, i) => {
      if (m.type === 'proc' && detached[i] === -1) mountProcWithHelper(k, pid, m);
    });
    withNamespacesOf(k, pid, ['mount'], () => {
      plan.deferred.forEach((m, i) => {
        if (m.type === 'proc' && detached[i] === -1) return; // mounted by the helper
        const fd = detached[i]!;
        // Inside the container's root: absolute symlinks and .. stay inside it. A proc
        // destination that is a symlink is refused outright (CVE-2019-19921).
        let st;
        try {
          st = lstatSync(m.destination);
        } catch {
          st = null;
        }
        if (st?.isSymbolicLink()) throw new TsrunError('ROOTFS', `mount destination ${m.destination} is a symlink in the image; refusing to mount ${m.type ?? 'bind'} through it`);
        if (!st) k.mkdirat(-100, m.destination, 0o755, `create the mount point ${m.destination}`);
        if (fd >= 0) k.moveMount(fd, -100, m.destination, `attach ${m.type ?? 'bind'} at ${m.destination}`);
        else {
          const o = parseMountOptions(m.options);
          k.mount(m.source ?? m.type ?? 'none', m.destination, m.type ?? null, o.flags, o.data.join(',') || null, `${m.destination}: ${m.type}`);
        }
      });
      if (plan.remake.length) remakeInOrder(k, plan.remake);
      for (const p of plan.maskedPaths) {
        const kind = exists(p);
        if (kind === 'dir') k.mount('tmpfs', p, 'tmpfs', MS.MS_RDONLY, null, `mask ${p}: an empty read-only tmpfs hides what the host exposes there`);
        else if (kind === 'file') k.mount('/dev/null', p, null, MS.MS_BIND, null, `mask ${p}: /dev/null bound over it reads as empty`);
      }
      for (const p of plan.readonlyPaths) {
        if (!exists(p)) continue;
        k.mount(p, p, null, MS.MS_BIND | MS.MS_REC, null, `${p}: bind onto itself so it can be made read-only alone`);
        k.mount(null, p, null, MS.MS_BIND | MS.MS_REMOUNT | MS.MS_RDONLY | MS.MS_REC | MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC, null, `${p}: read-only`);
      }
    });
  } finally {
    for (const fd of detached) if (fd >= 0) k.close(fd);
  }
}

