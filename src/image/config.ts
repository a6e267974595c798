// Image config -> run defaults, with docker's semantics:
//  - --entrypoint replaces the image's Entrypoint and drops its Cmd; "" means none;
//  - a command on the command line replaces Cmd;
//  - Env is the image's, then -e on top; WorkingDir unless -w;
//  - User (image or -u) may be a name, resolved through the image's own /etc/passwd
//    and /etc/group, with the supplementary groups where the user is listed.
// The passwd and group files are read from the stacked layers without mounting them,
// by walking the layers the way overlayfs would; a symlink is resolved against the
// image's root, never the host's, so a hostile image cannot make tsrun read host files.
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { TsrunError } from '../errors.js';
import type { ImageDefaults } from '../engine/run-spec.js';
import type { ImageConfigFile } from './store.js';

export interface ConfigOverrides {
  /** --entrypoint; "" clears it */
  entrypoint?: string;
  command: string[];
}

export function imageDefaults(cfg: ImageConfigFile, o: ConfigOverrides): ImageDefaults & { entrypoint: string[]; cmd: string[] } {
  const c = cfg.config ?? {};
  let entrypoint = c.Entrypoint ?? [];
  let cmd = c.Cmd ?? [];
  if (o.entrypoint !== undefined) {
    entrypoint = o.entrypoint === '' ? [] : [o.entrypoint];
    cmd = [];
  }
  if (o.command.length) cmd = o.command;
  return {
    entrypoint,
    cmd,
    env: c.Env ?? [],
    ...(c.WorkingDir ? { workingDir: c.WorkingDir } : {}),
    ...(c.User ? { user: c.User } : {}),
  };
}

const MAX_HOPS = 40;
const MAX_FILE = 4 << 20;

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function normalize(parts: string[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    if (!p || p === '.') continue;
    if (p === '..') out.pop(); // ".." at the root stays at the root, as in the kernel
    else out.push(p);
  }
  return out;
}

/**
 * Finds `path` in the merged view of `layers` (topmost first) and returns the host path
 * of the regular file that overlayfs would show, or null. Whiteouts hide lower entries;
 * a non-directory hides everything below it.
 * Limitation: opaque directories (an xattr) are not detected; Node has no getxattr.
 */
export function lookupInLayers(layers: string[], path: string): string | null {
  let parts = normalize(path.split('/'));
  for (let hop = 0; hop <= MAX_HOPS; hop++) {
    let active = layers;
    let restarted = false;
    for (let i = 0; i < parts.length; i++) {
      const rel = parts.slice(0, i + 1);
      let found: { st: Stats; host: string } | null = null;
      const next: string[] = [];
      for (const layer of active) {
        const host = join(layer, ...rel);
        let st: Stats;
        try {
          st = lstatSync(host);
        } catch {
          continue;
        }
        if (isWhiteout(st)) break;
        if (!found) found = { st, host };
        if (!st.isDirectory() || !found.st.isDirectory()) break;
        next.push(layer);
      }
      if (!found) return null;
      const last = i === parts.length - 1;
      if (found.st.isSymbolicLink()) {
        const target = readlinkSync(found.host);
        const base = target.startsWith('/') ? [] : parts.slice(0, i);
        parts = normalize([...base, ...target.split('/'), ...parts.slice(i + 1)]);
        restarted = true;
        break;
      }
      if (last) return found.st.isFile() ? found.host : null;
      if (!found.st.isDirectory()) return null;
      active = next;
    }
    if (!restarted) return null;
  }
  throw new TsrunError('IMAGE', `too many symlinks resolving ${path} in the image`);
}

/** Reads a small regular file from the layers, refusing anything but a plain file. */
export function readFromLayers(layers: string[], path: string): string | null {
  const host = lookupInLayers(layers, path);
  if (!host) return null;
  // O_NOFOLLOW: the walk above checked every component; this keeps the last one honest.
  const fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return null;
    const buf = Buffer.alloc(Math.min(st.size, MAX_FILE));
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n <= 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home?: string;
}

interface PasswdEntry { name: string; uid: number; gid: number; home: string }
interface GroupEntry { name: string; gid: number; members: string[] }

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === '' || f[3] === '') continue;
    out.push({ name: f[0]!, uid, gid, home: f[5]! });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#') || f[2] === '') continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid)) continue;
    out.push({ name: f[0]!, gid, members: f[3]!.split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return out;
}

const ID = /^\d+$/;
const MAX_ID = 2 ** 32 - 2;

/**
 * docker's user semantics (moby's user.GetExecUser): USER may be name, uid, name:group,
 * uid:gid. A numeric uid needs no passwd entry; a name must have one. The primary gid is
 * the passwd entry's unless a group is given; supplementary groups are the groups that
 * list the user by name.
 */
export function resolveUser(user: string | undefined, files: { passwd: string | null; group: string | null }): ResolvedUser {
  if (!user) user = '0';
  const [u, g, ...extra] = user.split(':');
  if (extra.length || !u) throw new TsrunError('USAGE', `user "${user}": expected USER[:GROUP]`, { hint: 'e.g. -u 1000, -u nobody, -u app:staff' });
  const passwd = files.passwd ? parsePasswd(files.passwd) : [];
  const groups = files.group ? parseGroup(files.group) : [];
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (ID.test(u)) {
    uid = Number(u);
    if (uid > MAX_ID) throw new TsrunError('USAGE', `uid ${u} is out of range`);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === u);
    if (!entry) throw new TsrunError('USAGE', `unable to find user ${u}: no matching entries in the image's /etc/passwd`, { hint: 'use a numeric uid, or a user the image defines' });
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;
  if (g !== undefined) {
    if (ID.test(g)) gid = Number(g);
    else {
      const ge = groups.find((x) => x.name === g);
      if (!ge) throw new TsrunError('USAGE', `unable to find group ${g}: no matching entries in the image's /etc/group`, { hint: 'use a numeric gid, or a group the image defines' });
      gid = ge.gid;
    }
    if (gid > MAX_ID) throw new TsrunError('USAGE', `gid ${g} is out of range`);
  }
  const additionalGids: number[] = [];
  if (entry) {
    for (const ge of groups) if (ge.members.includes(entry.name) && ge.gid !== gid && !additionalGids.includes(ge.gid)) additionalGids.push(ge.gid);
  }
  return { uid, gid, additionalGids, ...(entry?.home ? { home: entry.home } : {}) };
}

/** Resolves a USER against the image's layers (topmost first). */
export function resolveUserInLayers(user: string | undefined, layers: string[]): ResolvedUser {
  if (!user || /^\d+(:\d+)?$/.test(user)) {
    // Numeric ids need no lookup unless we want supplementary groups and HOME.
    if (!user) return { uid: 0, gid: 0, additionalGids: [], home: '/root' };
  }
  return resolveUser(user, { passwd: readFromLayers(layers, 'etc/passwd'), group: readFromLayers(layers, 'etc/group') });
}
