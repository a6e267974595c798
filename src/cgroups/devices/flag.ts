// docker's --device HOST[:CONTAINER][:PERMISSIONS]: the host's node is read for its type
// and numbers, recreated in the container's /dev (linux.devices), and allowed in the
// device cgroup (linux.resources.devices) with the given permissions (default rwm).
import { statSync } from 'node:fs';
import { isAbsolute, posix } from 'node:path';
import { TsrunError } from '../../errors.js';
import type { DeviceSpec } from '../../spec/types.js';
import type { DeviceRule } from './rules.js';

export interface DeviceFlag {
  device: DeviceSpec;
  rule: DeviceRule;
}

type StatLike = { isCharacterDevice(): boolean; isBlockDevice(): boolean; rdev: bigint; mode: bigint; uid: bigint; gid: bigint };

/** major()/minor() of glibc's sys/sysmacros.h for a 64-bit dev_t */
export function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major & 0xffffffffn), minor: Number(minor & 0xffffffffn) };
}

function usage(flag: string, why: string, hint?: string): TsrunError {
  return new TsrunError('USAGE', `--device ${flag}: ${why}`, hint ? { hint } : {});
}

export function parseDeviceFlag(flag: string, stat: (p: string) => StatLike = (p) => statSync(p, { bigint: true })): DeviceFlag {
  const parts = flag.split(':');
  if (parts.length > 3 || !parts[0]) throw usage(flag, 'expected HOST-PATH[:CONTAINER-PATH][:PERMISSIONS]', 'e.g. --device /dev/fuse or --device /dev/sdb:/dev/xvdc:r');
  const host = parts[0];
  let ctr = host;
  let access = 'rwm';
  // docker: a second part without a leading / is the permissions
  if (parts.length === 2 && !parts[1]!.startsWith('/')) access = parts[1]!;
  else if (parts.length >= 2) {
    ctr = parts[1]!;
    if (parts.length === 3) access = parts[2]!;
  }
  if (!access || !/^[rwm]+$/.test(access)) throw usage(flag, `permissions "${access}" must be made of r, w and m`);
  if (!isAbsolute(host)) throw usage(flag, 'the host path must be absolute');
  if (!isAbsolute(ctr)) throw usage(flag, 'the container path must be absolute');
  ctr = posix.normalize(ctr);
  let st: StatLike;
  try {
    st = stat(host);
  } catch (e) {
    throw usage(flag, `cannot stat ${host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : null;
  if (!type) throw usage(flag, `${host} is not a character or block device`);
  const { major, minor } = splitDev(st.rdev);
  const norm = ['r', 'w', 'm'].filter((c) => access.includes(c)).join('');
  return {
    device: { type, path: ctr, major, minor, fileMode: Number(st.mode & 0o777n), uid: Number(st.uid), gid: Number(st.gid) },
    rule: { allow: true, type, major, minor, access: norm },
  };
}
