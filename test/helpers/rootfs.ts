// Builds a minimal busybox root filesystem at test time from Debian's busybox-static
// (a statically linked binary, so the rootfs needs no libc or loader).
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

export const BUSYBOX_CANDIDATES = ['/usr/bin/busybox', '/bin/busybox'];

/** The host's static busybox, or null when busybox-static is not installed. */
export function findBusybox(): string | null {
  for (const p of BUSYBOX_CANDIDATES) {
    if (!existsSync(p)) continue;
    // A dynamically linked busybox (Debian's `busybox` package) would need the host's
    // libc inside the rootfs; only busybox-static works on a bare rootfs.
    try {
      const out = execFileSync('file', ['-L', p], { encoding: 'utf8' });
      if (/dynamically linked/.test(out)) continue;
    } catch {
      /* no `file` tool: assume static */
    }
    return p;
  }
  return null;
}

let appletCache: string[] | undefined;
function applets(busybox: string): string[] {
  // `busybox --list` includes "busybox" itself; linking bin/busybox onto itself would
  // replace the binary with a dangling self-link.
  appletCache ??= execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && s !== 'busybox' && !s.includes('/'));
  return appletCache;
}

export interface RootfsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The users every test rootfs has: root, a normal user (1000) and nobody. */
export const ROOTFS_USERS: RootfsUser[] = [
  { name: 'root', uid: 0, gid: 0, home: '/root' },
  { name: 'user', uid: 1000, gid: 1000, home: '/home/user' },
  { name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent' },
];

/** Groups: `user` is also a member of `wheel` (10) and `audio` (29) in /etc/group. */
export const ROOTFS_GROUPS = [
  { name: 'root', gid: 0, members: [] as string[] },
  { name: 'wheel', gid: 10, members: ['user'] },
  { name: 'tty', gid: 5, members: [] },
  { name: 'audio', gid: 29, members: ['user'] },
  { name: 'user', gid: 1000, members: [] },
  { name: 'nogroup', gid: 65534, members: [] },
];

export interface BuildRootfsOptions {
  /** extra files to write, path inside the rootfs -> contents (mode 0644) */
  files?: Record<string, string>;
}

/**
 * Creates a busybox rootfs in `dir` (which must exist or be creatable): /bin holds
 * busybox and one symlink per applet; /etc has passwd, group and hosts; /tmp (1777),
 * /root, /home/user, and empty /proc, /sys, /dev mount points. Returns `dir`.
 */
export function buildBusyboxRootfs(dir: string, opts: BuildRootfsOptions = {}): string {
  const busybox = findBusybox();
  if (!busybox) throw new Error('busybox-static is not installed: apt-get install -y busybox-static');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'root', 'home/user', 'var', 'run']) {
    mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  }
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  chmodSync(join(dir, 'root'), 0o700);
  copyFileSync(busybox, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const a of applets(busybox)) symlinkSync('busybox', join(dir, 'bin', a));
  const passwd = ROOTFS_USERS.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home}:/bin/sh`).join('\n') + '\n';
  const group = ROOTFS_GROUPS.map((g) => `${g.name}:x:${g.gid}:${g.members.join(',')}`).join('\n') + '\n';
  const files: Record<string, string> = {
    'etc/passwd': passwd,
    'etc/group': group,
    'etc/hosts': '127.0.0.1\tlocalhost\n',
    ...opts.files,
  };
  for (const [p, text] of Object.entries(files)) writeFileSync(join(dir, p), text, { mode: 0o644 });
  chownSync(join(dir, 'home/user'), 1000, 1000);
  return dir;
}
