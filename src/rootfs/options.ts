// Turns OCI/fstab mount options into mount(2) flags, propagation changes and the
// filesystem's own data string (mode=755, size=64m...), as runc's parseMountOptions does.
import { MS } from '../linux/constants.js';

export interface ParsedMountOptions {
  flags: number;
  /** propagation changes, applied with separate mount(2) calls after the mount */
  propagation: number[];
  data: string[];
  /** rbind, or "bind" alone */
  bind: 'none' | 'bind' | 'rbind';
  /** MS_RDONLY and friends on a bind need a second MS_REMOUNT call */
  readonly: boolean;
}

const SET: Record<string, number> = {
  ro: MS.MS_RDONLY, nosuid: MS.MS_NOSUID, nodev: MS.MS_NODEV, noexec: MS.MS_NOEXEC, sync: MS.MS_SYNCHRONOUS,
  remount: MS.MS_REMOUNT, mand: MS.MS_MANDLOCK, dirsync: MS.MS_DIRSYNC, noatime: MS.MS_NOATIME,
  nodiratime: MS.MS_NODIRATIME, relatime: MS.MS_RELATIME, strictatime: MS.MS_STRICTATIME,
  nosymfollow: MS.MS_NOSYMFOLLOW, lazytime: MS.MS_LAZYTIME,
};
const CLEAR: Record<string, number> = {
  rw: MS.MS_RDONLY, suid: MS.MS_NOSUID, dev: MS.MS_NODEV, exec: MS.MS_NOEXEC, async: MS.MS_SYNCHRONOUS,
  nomand: MS.MS_MANDLOCK, atime: MS.MS_NOATIME, diratime: MS.MS_NODIRATIME, norelatime: MS.MS_RELATIME,
  nostrictatime: MS.MS_STRICTATIME, symfollow: MS.MS_NOSYMFOLLOW,
};
export const PROPAGATION: Record<string, number> = {
  private: MS.MS_PRIVATE, rprivate: MS.MS_PRIVATE | MS.MS_REC, shared: MS.MS_SHARED, rshared: MS.MS_SHARED | MS.MS_REC,
  slave: MS.MS_SLAVE, rslave: MS.MS_SLAVE | MS.MS_REC, unbindable: MS.MS_UNBINDABLE, runbindable: MS.MS_UNBINDABLE | MS.MS_REC,
};

export function parseMountOptions(options: string[] | undefined): ParsedMountOptions {
  const out: ParsedMountOptions = { flags: 0, propagation: [], data: [], bind: 'none', readonly: false };
  for (const o of options ?? []) {
    if (o === 'bind') out.bind = out.bind === 'rbind' ? 'rbind' : 'bind';
    else if (o === 'rbind') out.bind = 'rbind';
    else if (o in SET) out.flags |= SET[o]!;
    else if (o in CLEAR) out.flags &= ~CLEAR[o]!;
    else if (o in PROPAGATION) out.propagation.push(PROPAGATION[o]!);
    else if (o === 'defaults' || o === 'tmpcopyup' || o === 'idmap' || o === 'ridmap') continue;
    else out.data.push(o);
  }
  out.readonly = (out.flags & MS.MS_RDONLY) !== 0;
  return out;
}
