// `tsrun cp`: files in and out of a container's root. Every path inside the container is
// resolved by the kernel with openat2(RESOLVE_IN_ROOT), so a symlink in the container
// (say /etc/x -> /../../host/etc/shadow) resolves against the container's root and can
// never name a host file (the class of CVE-2018-15664 / CVE-2019-14271 in docker cp).
// Entries below a resolved directory are opened relative to its fd with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, and symlinks are copied as symlinks.
import { closeSync, fstatSync, lstatSync, mkdirSync, readFileSync, readSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { O, RESOLVE } from '../../linux/constants.js';
import type { Kernel } from '../../linux/kernel.js';
import { TsrunError } from '../../errors.js';

const IN_ROOT = RESOLVE.RESOLVE_IN_ROOT;
const BENEATH = RESOLVE.RESOLVE_BENEATH | RESOLVE.RESOLVE_NO_SYMLINKS;

function readAllFd(fd: number): Buffer {
  const chunks: Buffer[] = [];
  for (;;) {
    const b = Buffer.alloc(1 << 16);
    const n = readSync(fd, b, 0, b.length, null);
    if (n <= 0) break;
    chunks.push(b.subarray(0, n));
  }
  return Buffer.concat(chunks);
}

function writeAllFd(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off);
}

/** Copies the directory open at `dirFd` (inside the container) to `host`. */
function copyDirOut(k: Kernel, dirFd: number, host: string): void {
  mkdirSync(host, { recursive: true, mode: fstatSync(dirFd).mode & 0o7777 });
  for (const name of readdirSync(`/proc/self/fd/${dirFd}`)) {
    const at = `/proc/self/fd/${dirFd}/${name}`; // the last component is not followed by lstat/readlink
    const st = lstatSync(at);
    const dst = join(host, name);
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(at), dst);
    else if (st.isDirectory() || st.isFile()) {
      const fd = k.openat2(dirFd, name, (st.isDirectory() ? O.O_DIRECTORY : 0) | O.O_RDONLY | O.O_NOFOLLOW | O.O_CLOEXEC, 0, BENEATH, 'cp: open an entry below a directory already resolved in the container');
      try {
        if (st.isDirectory()) copyDirOut(k, fd, dst);
        else writeFileSync(dst, readAllFd(fd), { mode: st.mode & 0o7777 });
      } finally {
        closeSync(fd);
      }
    }
    // devices, FIFOs and sockets are skipped, as docker cp does not recreate them either
  }
}

function copyDirIn(k: Kernel, parentFd: number, name: string, host: string): void {
  try {
    k.mkdirat(parentFd, name, statSync(host).mode & 0o7777, 'cp: make the directory in the container');
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
  }
  const dirFd = k.openat2(parentFd, name, O.O_DIRECTORY | O.O_PATH | O.O_CLOEXEC, 0, BENEATH, 'cp: open the directory just made, without following a symlink');
  try {
    for (const e of readdirSync(host)) {
      const src = join(host, e);
      const st = lstatSync(src);
      if (st.isDirectory()) copyDirIn(k, dirFd, e, src);
      else if (st.isSymbolicLink()) k.symlinkat(readlinkSync(src), dirFd, e, 'cp: copy a symlink as a symlink');
      else if (st.isFile()) writeFileAt(k, dirFd, e, readFileSync(src), st.mode & 0o7777, BENEATH);
    }
  } finally {
    closeSync(dirFd);
  }
}

function writeFileAt(k: Kernel, dirFd: number, path: string, data: Buffer, mode: number, resolve: number): void {
  const fd = k.openat2(dirFd, path, O.O_WRONLY | O.O_CREAT | O.O_TRUNC | O.O_CLOEXEC, mode, resolve, 'cp: write the file inside the container root');
  try {
    writeAllFd(fd, data);
  } finally {
    closeSync(fd);
  }
}

function isDirIn(k: Kernel, rootFd: number, path: string): boolean {
  try {
    const fd = k.openat2(rootFd, path, O.O_PATH | O.O_CLOEXEC, 0, IN_ROOT, 'cp: does the destination exist');
    try {
      return fstatSync(fd).isDirectory();
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

export function copyPaths(k: Kernel, root: string, o: { inside: string; host: string; direction: 'in' | 'out' }): void {
  const rootFd = k.open(root, O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC, 0, 'cp: hold the container root that every path resolves in');
  try {
    if (o.direction === 'out') {
      let fd: number;
      try {
        fd = k.openat2(rootFd, o.inside, O.O_RDONLY | O.O_CLOEXEC, 0, IN_ROOT, 'cp: open the source inside the container root');
      } catch (e) {
        throw new TsrunError('USAGE', `could not find the file ${o.inside} in the container: ${(e as Error).message}`);
      }
      try {
        const st = fstatSync(fd);
        let dst = o.host;
        try {
          if (statSync(dst).isDirectory()) dst = join(dst, basename(o.inside) || 'root');
        } catch {
          /* a new name */
        }
        if (st.isDirectory()) copyDirOut(k, fd, dst);
        else writeFileSync(dst, readAllFd(fd), { mode: st.mode & 0o7777 });
      } finally {
        closeSync(fd);
      }
      return;
    }
    let st;
    try {
      st = lstatSync(o.host);
    } catch {
      throw new TsrunError('USAGE', `no such file on the host: ${o.host}`);
    }
    let dest = o.inside;
    if (isDirIn(k, rootFd, dest)) dest = join(dest, basename(o.host));
    const parentFd = k.openat2(rootFd, dirname(dest), O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC, 0, IN_ROOT, 'cp: resolve the destination directory inside the container root');
    try {
      if (st.isDirectory()) copyDirIn(k, parentFd, basename(dest), o.host);
      else writeFileAt(k, parentFd, basename(dest), readFileSync(o.host), st.mode & 0o7777, IN_ROOT);
    } finally {
      closeSync(parentFd);
    }
  } finally {
    closeSync(rootFd);
  }
}
