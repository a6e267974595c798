// Resolving paths *inside* the rootfs. A container image controls its own symlinks: if
// /proc in the image is a symlink to /, or /data to ../../etc, a naive
// `mount(..., rootfs + dest)` follows it onto the host (CVE-2021-30465 and relatives).
// openat2(RESOLVE_IN_ROOT) makes the kernel treat the rootfs fd as `/` during the whole
// walk, and we then mount onto the returned fd through /proc/thread-self/fd/N, so the
// path cannot be swapped between the check and the mount.
import { O, RESOLVE, S_IFCHR } from '../linux/constants.js';
import { ENOENT, EEXIST } from '../linux/errno.js';
import { type Kernel, KernelError } from '../linux/kernel.js';

const RESOLVE_FLAGS = RESOLVE.RESOLVE_IN_ROOT | RESOLVE.RESOLVE_NO_MAGICLINKS;

export function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

/** Opens `path` inside the root as an O_PATH fd, or returns -1 when it does not exist. */
export function openInRoot(k: Kernel, rootfd: number, path: string, flags = O.O_PATH | O.O_CLOEXEC): number {
  try {
    return k.openat2(rootfd, path, flags, 0, RESOLVE_FLAGS);
  } catch (e) {
    if (e instanceof KernelError && e.errno === ENOENT) return -1;
    throw e;
  }
}

/**
 * Opens `path` inside the root, creating what is missing: directories along the way, and
 * the last component as a directory or an empty file (a bind-mounted file needs a file
 * to land on). Returns an O_PATH fd.
 */
export function ensureInRoot(k: Kernel, rootfd: number, path: string, kind: 'dir' | 'file', mode = 0o755): number {
  const existing = openInRoot(k, rootfd, path);
  if (existing >= 0) return existing;
  // Walk the prefixes, each resolved from the rootfs fd (so a symlink anywhere along
  // the way resolves as it would inside the container, and never leaves the rootfs),
  // creating what is missing in the directory its parent resolved to.
  const parts = components(path);
  let parentfd = k.openat2(rootfd, '/', O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC, 0, RESOLVE_FLAGS);
  try {
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      const prefix = '/' + parts.slice(0, i + 1).join('/');
      const last = i === parts.length - 1;
      const dirFlags = last && kind === 'file' ? 0 : O.O_DIRECTORY;
      let fd = openInRoot(k, rootfd, prefix, O.O_PATH | O.O_CLOEXEC | dirFlags);
      if (fd < 0) {
        if (!last || kind === 'dir') {
          try {
            k.mkdirat(parentfd, name, mode, 'create a missing mount point inside the rootfs');
          } catch (e) {
            if (!(e instanceof KernelError && e.errno === EEXIST)) throw e;
          }
        } else {
          // An empty file to bind over. O_CREAT|O_EXCL never follows a symlink at the last component.
          // EEXIST: another container on the same rootfs made it first (two runs of one
          // --rootfs without /etc/resolv.conf); the in-root open below resolves it.
          try {
            k.close(k.openat2(parentfd, name, O.O_CREAT | O.O_EXCL | O.O_WRONLY | O.O_CLOEXEC | O.O_NOFOLLOW, 0o644, RESOLVE_FLAGS));
          } catch (e) {
            if (!(e instanceof KernelError && e.errno === EEXIST)) throw e;
          }
        }
        fd = k.openat2(rootfd, prefix, O.O_PATH | O.O_CLOEXEC | dirFlags, 0, RESOLVE_FLAGS);
      }
      k.close(parentfd);
      parentfd = fd;
    }
    return parentfd;
  } catch (e) {
    k.close(parentfd);
    throw e;
  }
}

/** The path through which the kernel reaches an fd; mount(2) onto it uses the fd's target. */
export function fdPath(fd: number): string {
  return `/proc/thread-self/fd/${fd}`;
}

export { S_IFCHR };
