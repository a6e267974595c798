// unpackLayer against real temp dirs, with tars built in memory. Cases that need root
// (mknod of devices, trusted.* and security.* xattrs, chown) are skipped without it.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entryParts, sniffCompression, unpackLayer } from '../../src/image/unpack.js';
import { sha256 as sha } from '../helpers/images.js';
import { tarOf, type TarEntrySpec } from '../helpers/tar.js';
import { commandsRun } from '../helpers/commands.js';

const isRoot = process.getuid?.() === 0;
const hasZstd = commandsRun(['zstd', '--version']);

type E = TarEntrySpec;

/** A PAX extended header block whose values are raw bytes (tar-stream's encoder only takes strings). */
function paxBlock(records: Array<[string, Buffer]>): Buffer {
  const recs: Buffer[] = [];
  for (const [k, v] of records) {
    const body = Buffer.concat([Buffer.from(` ${k}=`), v, Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    recs.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  const data = Buffer.concat(recs);
  const h = Buffer.alloc(512);
  h.write('PaxHeader', 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('x', 156);
  h.write('ustar\0' + '00', 257, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function getxattr(p: string, name: string): Buffer | null {
  try {
    const hex = execFileSync('python3', ['-c', 'import os,sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).hex())', p, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return Buffer.from(hex, 'hex');
  } catch {
    return null;
  }
}

const mtime = new Date('2020-01-02T03:04:05Z');
const T = mtime.getTime() / 1000;

let base: string;
let dest: string;
let outside: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'tsrun-unpack-'));
  dest = join(base, 'layer');
  outside = join(base, 'outside');
  mkdirSync(outside);
});
afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

describe('unpackLayer: entry kinds and metadata', () => {
  it('writes files, dirs, symlinks, hardlinks with modes, owners and mtimes, and returns the diff ID of the plain tar', async () => {
    const tar = await tarOf([
      { h: { name: 'etc/', type: 'directory', mode: 0o755, mtime } },
      { h: { name: 'etc/hostname', mode: 0o644, mtime, uid: 1234, gid: 5678 }, body: 'box\n' },
      { h: { name: 'bin/su', mode: 0o4755, mtime }, body: 'suid' },
      { h: { name: 'bin/sg', mode: 0o2711, mtime }, body: 'sgid' },
      { h: { name: 'tmp/', type: 'directory', mode: 0o1777, mtime } },
      { h: { name: 'bin/sh', type: 'symlink', linkname: 'busybox', mtime } },
      { h: { name: 'bin/su2', type: 'link', linkname: 'bin/su', mtime } },
      { h: { name: 'ro/', type: 'directory', mode: 0o555, mtime } },
      { h: { name: 'ro/inside', mode: 0o600, mtime }, body: 'x' },
    ]);
    const r = await unpackLayer(Readable.from([tar]), dest);
    expect(r.diffId).toBe(sha(tar));
    expect(r.size).toBe(tar.length);
    expect(readFileSync(join(dest, 'etc/hostname'), 'utf8')).toBe('box\n');
    const st = statSync(join(dest, 'etc/hostname'));
    expect(st.mode & 0o7777).toBe(0o644);
    expect(st.mtimeMs / 1000).toBe(T);
    if (isRoot) expect([st.uid, st.gid]).toEqual([1234, 5678]);
    expect(statSync(join(dest, 'bin/su')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(dest, 'bin/sg')).mode & 0o7777).toBe(0o2711);
    expect(statSync(join(dest, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(readlinkSync(join(dest, 'bin/sh'))).toBe('busybox');
    expect(lstatSync(join(dest, 'bin/sh')).mtimeMs / 1000).toBe(T);
    expect(statSync(join(dest, 'bin/su2')).ino).toBe(statSync(join(dest, 'bin/su')).ino);
    // Directory times and modes are set after their contents went in.
    expect(statSync(join(dest, 'ro')).mode & 0o7777).toBe(0o555);
    expect(statSync(join(dest, 'ro')).mtimeMs / 1000).toBe(T);
    expect(statSync(join(dest, 'etc')).mtimeMs / 1000).toBe(T);
    // bin/ had no entry: made 0755 like tar does.
    expect(statSync(join(dest, 'bin')).isDirectory()).toBe(true);
  });

  it('applies a "./" entry to the layer root itself', async () => {
    const tar = await tarOf([{ h: { name: './', type: 'directory', mode: 0o750, mtime } }, { h: { name: './a', mtime }, body: 'a' }]);
    await unpackLayer(Readable.from([tar]), dest);
    expect(statSync(dest).mode & 0o7777).toBe(0o750);
    expect(statSync(dest).mtimeMs / 1000).toBe(T);
  });

  it('replaces an earlier entry of the same name instead of writing through it', async () => {
    const tar = await tarOf([
      { h: { name: 'a', type: 'symlink', linkname: join(outside, 'victim') } },
      { h: { name: 'a', mode: 0o644 }, body: 'new' },
      { h: { name: 'd/', type: 'directory' } },
      { h: { name: 'd/x' }, body: 'x' },
      { h: { name: 'd', type: 'symlink', linkname: '/' } },
    ]);
    await unpackLayer(Readable.from([tar]), dest);
    expect(lstatSync(join(dest, 'a')).isFile()).toBe(true);
    expect(readFileSync(join(dest, 'a'), 'utf8')).toBe('new');
    expect(lstatSync(join(dest, 'd')).isSymbolicLink()).toBe(true);
    expect(readdirSync(outside)).toEqual([]);
  });

  it.skipIf(!isRoot)('makes char and block devices and fifos', async () => {
    const tar = await tarOf([
      { h: { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 } },
      { h: { name: 'dev/loop9', type: 'block-device', devmajor: 7, devminor: 9, mode: 0o660 } },
      { h: { name: 'run/fifo', type: 'fifo', mode: 0o620 } },
    ]);
    await unpackLayer(Readable.from([tar]), dest);
    const n = statSync(join(dest, 'dev/null'));
    expect(n.isCharacterDevice()).toBe(true);
    expect(n.rdev).toBe((1 << 8) | 3);
    expect(n.mode & 0o777).toBe(0o666);
    expect(statSync(join(dest, 'dev/loop9')).isBlockDevice()).toBe(true);
    expect(statSync(join(dest, 'run/fifo')).isFIFO()).toBe(true);
    expect(statSync(join(dest, 'run/fifo')).mode & 0o777).toBe(0o620);
  });

  it('makes fifos without root too', async () => {
    const tar = await tarOf([{ h: { name: 'p', type: 'fifo', mode: 0o644 } }]);
    await unpackLayer(Readable.from([tar]), dest);
    expect(statSync(join(dest, 'p')).isFIFO()).toBe(true);
  });

  it.skipIf(!isRoot)('restores xattrs from PAX records, binary security.capability included, but not forged trusted.overlay.*', async () => {
    // vfs_cap_data revision 2, effective, permitted = CAP_SETUID (bit 7): byte 0x80 is not valid UTF-8 on its own.
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const rest = await tarOf([{ h: { name: 'bin/ping', mode: 0o755 }, body: 'elf' }]);
    const tar = Buffer.concat([
      paxBlock([
        ['SCHILY.xattr.security.capability', cap],
        ['SCHILY.xattr.user.note', Buffer.from('hello')],
        ['SCHILY.xattr.trusted.overlay.redirect', Buffer.from('/etc')],
      ]),
      rest,
    ]);
    const r = await unpackLayer(Readable.from([tar]), dest);
    expect(r.diffId).toBe(sha(tar));
    expect(getxattr(join(dest, 'bin/ping'), 'security.capability')).toEqual(cap);
    expect(getxattr(join(dest, 'bin/ping'), 'user.note')?.toString()).toBe('hello');
    expect(getxattr(join(dest, 'bin/ping'), 'trusted.overlay.redirect')).toBeNull();
    expect(execFileSync('getcap', [join(dest, 'bin/ping')], { encoding: 'utf8' })).toMatch(/cap_setuid[=+]ep/);
  });
});

describe('unpackLayer: whiteouts', () => {
  it.skipIf(!isRoot)('turns .wh.NAME into a 0/0 char device and .wh..wh..opq into trusted.overlay.opaque=y', async () => {
    const tar = await tarOf([
      { h: { name: 'etc/', type: 'directory' } },
      { h: { name: 'etc/.wh.motd' } },
      { h: { name: 'var/cache/.wh..wh..opq' } },
      { h: { name: 'var/cache/new' }, body: 'n' },
      { h: { name: '.wh..wh.plnk/' , type: 'directory'} },
    ]);
    await unpackLayer(Readable.from([tar]), dest);
    const wh = lstatSync(join(dest, 'etc/motd'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    expect(existsSync(join(dest, 'etc/.wh.motd'))).toBe(false);
    expect(getxattr(join(dest, 'var/cache'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(existsSync(join(dest, 'var/cache/.wh..wh..opq'))).toBe(false);
    expect(readFileSync(join(dest, 'var/cache/new'), 'utf8')).toBe('n');
    expect(existsSync(join(dest, '.wh..wh.plnk'))).toBe(false);
  });
});

describe('unpackLayer: compression', () => {
  const entries: E[] = [{ h: { name: 'hello', mtime }, body: 'world\n' }];
  it('sniffs gzip, zstd and plain by their magic bytes', () => {
    expect(sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(sniffCompression(Buffer.from('hell'))).toBe('none');
  });

  it('unpacks gzip (auto and explicit), diff ID over the uncompressed tar', async () => {
    const tar = await tarOf(entries);
    const gz = gzipSync(tar);
    const r = await unpackLayer(Readable.from([gz.subarray(0, 3), gz.subarray(3)]), dest);
    expect(r.diffId).toBe(sha(tar));
    expect(readFileSync(join(dest, 'hello'), 'utf8')).toBe('world\n');
    const r2 = await unpackLayer(Readable.from([gz]), join(base, 'l2'), { compression: 'gzip' });
    expect(r2.diffId).toBe(sha(tar));
  });

  it.skipIf(!hasZstd)('unpacks zstd', async () => {
    const tar = await tarOf(entries);
    const zst = execFileSync('zstd', ['-q', '-c'], { input: tar });
    const r = await unpackLayer(Readable.from([zst]), dest);
    expect(r.diffId).toBe(sha(tar));
    expect(readFileSync(join(dest, 'hello'), 'utf8')).toBe('world\n');
  });

  it('fails on a truncated gzip layer and on a truncated tar', async () => {
    const tar = await tarOf([{ h: { name: 'big' }, body: Buffer.alloc(100_000, 7) }]);
    const gz = gzipSync(tar);
    await expect(unpackLayer(Readable.from([gz.subarray(0, gz.length - 100)]), dest)).rejects.toThrow(/gzip|truncated/);
    await expect(unpackLayer(Readable.from([tar.subarray(0, 50_000)]), join(base, 'l2'))).rejects.toThrow(/truncated/);
  });

  it('fails on a corrupt header checksum', async () => {
    const tar = await tarOf(entries);
    tar[0] = 0x5a;
    await expect(unpackLayer(Readable.from([tar]), dest)).rejects.toThrow(/checksum/);
  });
});

describe('unpackLayer: hostile layers are refused and write nothing outside', () => {
  const hostile: Array<[string, () => E[]]> = [
    ['../ traversal', () => [{ h: { name: '../outside/pwned' }, body: 'x' }]],
    ['nested ../ traversal', () => [{ h: { name: 'a/../../outside/pwned' }, body: 'x' }]],
    ['an absolute path', () => [{ h: { name: join(outside, 'pwned') }, body: 'x' }]],
    ['a write through an absolute symlink', () => [
      { h: { name: 'esc', type: 'symlink', linkname: outside } },
      { h: { name: 'esc/pwned' }, body: 'x' },
    ]],
    ['a write through a relative symlink that climbs out', () => [
      { h: { name: 'sub/', type: 'directory' } },
      { h: { name: 'sub/esc', type: 'symlink', linkname: '../../outside' } },
      { h: { name: 'sub/esc/pwned' }, body: 'x' },
    ]],
    ['a directory made through an escaping symlink', () => [
      { h: { name: 'esc', type: 'symlink', linkname: outside } },
      { h: { name: 'esc/newdir/', type: 'directory' } },
    ]],
    ['a whiteout through an escaping symlink', () => [
      { h: { name: 'esc', type: 'symlink', linkname: outside } },
      { h: { name: 'esc/.wh.victim' } },
    ]],
    ['a hardlink to a file outside (traversal)', () => [{ h: { name: 'stolen', type: 'link', linkname: '../outside/secret' } }]],
    ['a hardlink to a file outside (absolute)', () => [{ h: { name: 'stolen', type: 'link', linkname: join(outside, 'secret') } }]],
    ['a hardlink through an escaping symlink', () => [
      { h: { name: 'esc', type: 'symlink', linkname: outside } },
      { h: { name: 'stolen', type: 'link', linkname: 'esc/secret' } },
    ]],
    ['a symlink replacing the layer root', () => [{ h: { name: './', type: 'symlink', linkname: outside } }]],
    ['a file replacing the layer root', () => [{ h: { name: '.', mode: 0o644 }, body: 'x' }]],
  ];

  for (const [what, entries] of hostile) {
    it(`refuses ${what}`, async () => {
      writeFileSync(join(outside, 'secret'), 'top secret');
      writeFileSync(join(outside, 'victim'), 'v');
      const tar = await tarOf(entries());
      await expect(unpackLayer(Readable.from([tar]), dest)).rejects.toThrow(/refusing layer entry/);
      expect(readdirSync(outside).sort()).toEqual(['secret', 'victim']);
      expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('v');
      expect(statSync(join(outside, 'secret')).nlink).toBe(1);
      expect(readdirSync(base).sort()).toEqual(['layer', 'outside']);
      expect(lstatSync(dest).isDirectory()).toBe(true);
    });
  }

  it('follows a symlink that stays inside the layer', async () => {
    const tar = await tarOf([
      { h: { name: 'usr/lib/', type: 'directory' } },
      { h: { name: 'lib', type: 'symlink', linkname: 'usr/lib' } },
      { h: { name: 'lib/libc.so' }, body: 'c' },
    ]);
    await unpackLayer(Readable.from([tar]), dest);
    expect(readFileSync(join(dest, 'usr/lib/libc.so'), 'utf8')).toBe('c');
  });

  it('entryParts refuses absolute names and .., keeps ./ prefixes', () => {
    expect(entryParts('./usr/bin/')).toEqual(['usr', 'bin']);
    expect(() => entryParts('/etc/passwd')).toThrow(/absolute/);
    expect(() => entryParts('a/../b')).toThrow(/traversal/);
  });
});
