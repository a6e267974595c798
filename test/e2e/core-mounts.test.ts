// Core runtime, the filesystem: read-only root, bind volumes, tmpfs, and mount
// destinations that an image tries to redirect onto the host with symlinks.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { parseMountinfo } from '../helpers/leaks.js';

const mountAt = (mountinfo: string, point: string) => parseMountinfo(mountinfo).find((m) => m.mountPoint === point);

describe('core: read-only root', () => {
  const sb = useSandbox();

  it('--read-only makes / read-only, and nothing lands in the rootfs', async () => {
    const r = await sb.run(['sh', '-c', 'touch /newfile 2>&1; echo rc=$?; awk \'$5 == "/" { print $6 }\' /proc/self/mountinfo'], ['--read-only']);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toContain('Read-only file system');
    expect(lines[1]).toBe('rc=1');
    expect(lines[2]).toMatch(/^ro(,|$)/);
    expect(existsSync(join(sb.rootfs(), 'newfile'))).toBe(false);
  });

  it('--read-only keeps /dev, /dev/shm and tmpfs mounts writable', async () => {
    const r = await sb.run(['sh', '-c', 'echo a > /dev/shm/x && echo b > /scratch/y && cat /dev/shm/x /scratch/y && echo z > /dev/null && echo ok'], ['--read-only', '--tmpfs', '/scratch']);
    expectExit(r, 0);
    expect(r.stdout).toBe('a\nb\nok\n');
  });

  it('without --read-only the root is writable and writes land in the rootfs', async () => {
    const r = await sb.run(['sh', '-c', 'echo written > /newfile']);
    expectExit(r, 0);
    expect(readFileSync(join(sb.rootfs(), 'newfile'), 'utf8')).toBe('written\n');
  });
});

describe('core: bind volumes (-v)', () => {
  const sb = useSandbox();

  it('-v host:ctr binds read-write: both sides see each other\'s writes', async () => {
    const vol = sb.mkdir('vol');
    writeFileSync(join(vol, 'from-host'), 'hello from the host\n');
    const r = await sb.run(['sh', '-c', 'cat /data/from-host; echo from-container > /data/from-container; grep " /data " /proc/self/mountinfo | cut -d" " -f4,6'], ['-v', `${vol}:/data`]);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('hello from the host');
    expect(lines[1]).toMatch(new RegExp(`^${vol} rw(,|$)`));
    expect(readFileSync(join(vol, 'from-container'), 'utf8')).toBe('from-container\n');
    // The mount point was created inside the rootfs, and holds nothing itself.
    expect(readdirSync(join(sb.rootfs(), 'data'))).toEqual([]);
  });

  it('-v host:ctr:ro binds read-only: readable, not writable, host file unchanged', async () => {
    const vol = sb.mkdir('vol');
    writeFileSync(join(vol, 'file'), 'original\n');
    const r = await sb.run(['sh', '-c', 'cat /data/file; { echo changed > /data/file; } 2>&1; echo rc=$?; touch /data/new 2>&1; grep " /data " /proc/self/mountinfo | cut -d" " -f6'], ['-v', `${vol}:/data:ro`]);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('original');
    expect(lines[1]).toContain('Read-only file system');
    expect(lines[2]).toBe('rc=1');
    expect(lines[3]).toContain('Read-only file system');
    expect(lines[4]).toMatch(/^ro(,|$)/);
    expect(readFileSync(join(vol, 'file'), 'utf8')).toBe('original\n');
    expect(readdirSync(vol)).toEqual(['file']);
  });

  it('-v binds a single file', async () => {
    const f = sb.writeFile('hosts.override', '10.9.8.7 special\n');
    const r = await sb.run(['cat', '/etc/hosts'], ['-v', `${f}:/etc/hosts:ro`]);
    expectExit(r, 0);
    expect(r.stdout).toBe('10.9.8.7 special\n');
    // The image's own file is only covered, not replaced.
    expect(readFileSync(join(sb.rootfs(), 'etc/hosts'), 'utf8')).toBe('127.0.0.1\tlocalhost\n');
  });

  it('a missing -v source is an error (125) that names it', async () => {
    const missing = join(sb.dir, 'does-not-exist');
    const r = await sb.run(['true'], ['-v', `${missing}:/data`]);
    expectExit(r, 125);
    expect(r.stderr).toContain(missing);
  });
});

describe('core: --tmpfs', () => {
  const sb = useSandbox();

  it('mounts a fresh tmpfs with the given options; writes never reach the rootfs', async () => {
    // mode=0700, not tmpfs's default 1777, which mountinfo would not even show.
    const r = await sb.run(['sh', '-c', 'echo hi > /scratch/f && cat /scratch/f; stat -c %a /scratch; grep " /scratch " /proc/self/mountinfo | cut -d" " -f6-'], ['--tmpfs', '/scratch:size=1m,mode=0700']);
    expectExit(r, 0);
    const [content, mode, info] = r.stdout.trim().split('\n');
    expect(content).toBe('hi');
    expect(mode).toBe('700');
    expect(info).toMatch(/nosuid/);
    expect(info).toMatch(/nodev/);
    expect(info).toMatch(/noexec/);
    expect(info).toMatch(/ - tmpfs tmpfs .*size=1024k/);
    expect(info).toMatch(/mode=700/);
    expect(readdirSync(join(sb.rootfs(), 'scratch'))).toEqual([]);
  });

  it('a tmpfs is noexec by default (docker\'s --tmpfs)', async () => {
    const r = await sb.run(['sh', '-c', 'cp /bin/busybox /scratch/bb && /scratch/bb true 2>&1; echo rc=$?'], ['--tmpfs', '/scratch']);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/Permission denied[\s\S]*rc=126/);
  });
});

describe('core: symlinks in the image cannot redirect mounts onto the host', () => {
  const sb = useSandbox();

  /**
   * A host directory the image tries to reach, outside the rootfs. If tsrun followed
   * the image's symlinks on the host, the mount would land on it (in the container's
   * mount namespace) and the mount point would be this directory, not one inside the
   * rootfs. Its contents and mtime must not change.
   */
  function victim(): { dir: string; before: { mtime: number; entries: string[] } } {
    const dir = sb.mkdir('victim');
    writeFileSync(join(dir, 'precious'), 'host data\n');
    return { dir, before: { mtime: statSync(dir).mtimeMs, entries: readdirSync(dir) } };
  }
  function expectUntouched(v: ReturnType<typeof victim>): void {
    expect(readdirSync(v.dir)).toEqual(v.before.entries);
    expect(readFileSync(join(v.dir, 'precious'), 'utf8')).toBe('host data\n');
    expect(statSync(v.dir).mtimeMs).toBe(v.before.mtime);
  }

  it.each([
    ['an absolute symlink to /', '/'],
    ['a relative symlink climbing out with ../../..', '../../../../../../../../..'],
  ])('through %s, a --tmpfs lands inside the rootfs', async (_label, target) => {
    const v = victim();
    const rootfs = sb.rootfs();
    symlinkSync(target, join(rootfs, 'evil'));
    // /evil/<victim path> names the victim if /evil is resolved on the host.
    const dest = `/evil${v.dir}`;
    const r = await sb.run(['sh', '-c', `echo pwned > ${dest}/pwned; ls -A ${dest}; cut -d" " -f5,9 /proc/self/mountinfo`], ['--tmpfs', `${dest}:mode=755`]);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    // Inside the container, the tmpfs is at the victim's path *within the rootfs*,
    // and it holds only what the container wrote.
    expect(lines[0]).toBe('pwned');
    expect(lines).toContain(`${v.dir} tmpfs`);
    expectUntouched(v);
    // The mount point was created in the rootfs (the symlink resolved to the rootfs's /).
    expect(statSync(join(rootfs, v.dir)).isDirectory()).toBe(true);
    expect(relative(rootfs, join(rootfs, v.dir)).startsWith('..')).toBe(false);
  });

  // The symlink sits below the first component, so it must be resolved against the
  // rootfs's / (as runc's securejoin does), not against its own parent directory.
  it('through a symlinked parent, a -v bind lands inside the rootfs, where the container looks', async () => {
    const v = victim();
    const src = sb.mkdir('src');
    writeFileSync(join(src, 'from-src'), 'src\n');
    const rootfs = sb.rootfs();
    mkdirSync(join(rootfs, 'a'));
    symlinkSync('../../../../../../..', join(rootfs, 'a/up'));
    const dest = `/a/up${v.dir}`;
    const r = await sb.run(['sh', '-c', `ls -A ${dest}; echo x > ${dest}/written`], ['-v', `${src}:${dest}`]);
    // The security property first: the host path was not touched...
    expectUntouched(v);
    // ...then correctness: the bind is where the container resolves the same path.
    expectExit(r, 0);
    expect(r.stdout.trim()).toBe('from-src');
    expect(readFileSync(join(src, 'written'), 'utf8')).toBe('x\n');
    expect(statSync(join(rootfs, v.dir)).isDirectory()).toBe(true);
  });

  it('a symlinked file destination is resolved inside the rootfs too', async () => {
    // rootfs/etc/motd -> /etc/passwd-like host target: here, the victim's file.
    const v = victim();
    const rootfs = sb.rootfs();
    symlinkSync(join(v.dir, 'precious'), join(rootfs, 'etc/motd'));
    mkdirSync(join(rootfs, v.dir), { recursive: true });
    writeFileSync(join(rootfs, v.dir, 'precious'), 'image copy\n');
    const f = sb.writeFile('motd', 'bound\n');
    const r = await sb.run(['sh', '-c', `cat /etc/motd; cat ${v.dir}/precious`], ['-v', `${f}:/etc/motd:ro`]);
    expectExit(r, 0);
    expect(r.stdout).toBe('bound\nbound\n');
    expectUntouched(v);
    expect(readFileSync(join(rootfs, v.dir, 'precious'), 'utf8')).toBe('image copy\n');
  });
});
