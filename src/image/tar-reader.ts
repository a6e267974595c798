// A streaming tar reader for layer unpacking.
// Why not tar-stream's extract: it decodes PAX record values as UTF-8, which corrupts
// binary extended attributes (SCHILY.xattr.security.capability holds a raw
// vfs_cap_data struct, whose bytes are often not valid UTF-8). Here PAX values stay
// bytes until we know what they are. The format is POSIX.1-2001 pax over ustar, plus
// the GNU long name/link records that GNU tar and Go's archive/tar emit.
import { TsrunError } from '../errors.js';

export type EntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo' | 'other';

export interface TarHeader {
  name: string;
  type: EntryType;
  /** the raw typeflag byte, for messages about unsupported entries */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** seconds since the epoch, fractional with PAX */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** extended attributes from SCHILY.xattr.* PAX records, values as raw bytes */
  xattrs: Map<string, Buffer>;
}

/** Pulls exact byte counts out of an async byte stream; every byte it sees goes to `onBytes` (the diff ID hash). */
export class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  private readonly it: AsyncIterator<Buffer>;
  constructor(src: AsyncIterable<Buffer | Uint8Array>, private readonly onBytes: (b: Buffer) => void) {
    this.it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    this.onBytes(chunk);
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    return true;
  }

  /** Exactly n bytes, or null at a clean end of stream (nothing buffered). Throws on a short read. */
  async read(n: number): Promise<Buffer | null> {
    while (this.buf.length < n) {
      if (!(await this.more())) {
        if (this.buf.length === 0) return null;
        throw truncated();
      }
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** n bytes as a sequence of chunks, without holding them all in memory. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.more())) throw truncated();
      const take = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n)) void _;
  }

  /** Reads to the end, so the hash covers the whole stream (the end-of-archive blocks and any padding after them). */
  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.more()) this.buf = Buffer.alloc(0);
  }
}

function truncated(): TsrunError {
  return new TsrunError('IMAGE', 'layer tar is truncated', { hint: 'the layer blob is incomplete or corrupt' });
}

function corrupt(what: string): TsrunError {
  return new TsrunError('IMAGE', `layer tar is corrupt: ${what}`, { hint: 'the layer is not a valid tar archive' });
}

export function cstr(b: Buffer, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const z = f.indexOf(0);
  return (z < 0 ? f : f.subarray(0, z)).toString('utf8');
}

/** A numeric field: octal text, or GNU base-256 when the high bit of the first byte is set (values >= 8 GiB, uids >= 2^21). */
export function num(b: Buffer, off: number, len: number): number {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    let v = BigInt(f[0]! & 0x7f);
    for (let i = 1; i < f.length; i++) v = (v << 8n) | BigInt(f[i]!);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt('numeric field out of range');
    return Number(v);
  }
  const s = f.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw corrupt(`bad octal field "${s}"`);
  return parseInt(s, 8);
}

export function checksumOk(b: Buffer): boolean {
  let want: number;
  try {
    want = num(b, 148, 8);
  } catch {
    return false;
  }
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  return sum === want;
}

const TYPES: Record<string, EntryType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'link', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};

interface Pax {
  [key: string]: Buffer;
}

/** PAX records are "LEN KEY=VALUE\n" with LEN in bytes, counting the whole record. */
export function parsePax(b: Buffer): Pax {
  const out: Pax = {};
  let off = 0;
  while (off < b.length) {
    const sp = b.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(b.subarray(off, sp).toString('latin1'), 10);
    if (!(len > 0) || off + len > b.length) {
      if (b.subarray(off).every((x) => x === 0)) break;
      throw corrupt('bad PAX record length');
    }
    const rec = b.subarray(sp + 1, off + len - 1); // drop the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw corrupt('PAX record without "="');
    out[rec.subarray(0, eq).toString('utf8')] = rec.subarray(eq + 1);
    off += len;
  }
  return out;
}

const pad = (n: number): number => (512 - (n % 512)) % 512;

export interface TarEntry {
  header: TarHeader;
  /** the entry's contents; must be consumed (or skipped by the reader) before the next entry */
  body: () => AsyncGenerator<Buffer>;
}

/** Yields entries in archive order. Consuming `body()` is optional: what is left is skipped. */
export async function* readTar(r: ByteReader): AsyncGenerator<TarEntry> {
  let globalPax: Pax = {};
  let pax: Pax | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;
  for (;;) {
    const h = await r.read(512);
    if (h === null) throw truncated(); // a tar ends with zero blocks, not with EOF
    if (h.every((x) => x === 0)) return; // end of archive; the caller drains the rest
    if (!checksumOk(h)) throw corrupt('header checksum mismatch');
    const flag = String.fromCharCode(h[156]!);
    let size = num(h, 124, 12);
    const magic = h.subarray(257, 263).toString('latin1');
    // POSIX ustar ("ustar\0") splits long names into prefix/name; GNU ("ustar  ") uses that area for other fields.
    const prefix = magic === 'ustar\0' ? cstr(h, 345, 155) : '';

    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > 16 << 20) throw corrupt('extended header larger than 16 MiB');
      const data = (await r.read(size + pad(size))) ?? Buffer.alloc(0);
      const body = data.subarray(0, size);
      if (flag === 'x') pax = { ...globalPax, ...parsePax(body) };
      else if (flag === 'g') globalPax = { ...globalPax, ...parsePax(body) };
      else if (flag === 'L') longName = cstr(body, 0, body.length);
      else longLink = cstr(body, 0, body.length);
      continue;
    }

    const p = pax ?? globalPax;
    let name = longName ?? (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
    let linkname = longLink ?? cstr(h, 157, 100);
    if (p.path) name = p.path.toString('utf8');
    if (p.linkpath) linkname = p.linkpath.toString('utf8');
    if (p.size) size = parseInt(p.size.toString('latin1'), 10);
    const paxNum = (k: string, dflt: number): number => (p[k] ? Number(p[k]!.toString('latin1')) : dflt);
    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of Object.entries(p)) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
    pax = null;
    longName = null;
    longLink = null;
    if (!Number.isSafeInteger(size) || size < 0) throw corrupt(`bad size for "${name}"`);

    const type = TYPES[flag] ?? 'other';
    const header: TarHeader = {
      name,
      type,
      typeflag: flag,
      mode: num(h, 100, 8) & 0o7777,
      uid: paxNum('uid', num(h, 108, 8)),
      gid: paxNum('gid', num(h, 116, 8)),
      size: type === 'file' || type === 'other' ? size : 0,
      mtime: paxNum('mtime', num(h, 136, 12)),
      linkname,
      devmajor: type === 'char' || type === 'block' ? num(h, 329, 8) : 0,
      devminor: type === 'char' || type === 'block' ? num(h, 337, 8) : 0,
      xattrs,
    };
    // Only regular files carry data in the archive; a hardlink or dir with a size field has none to read.
    const dataLen = header.size;
    let started = false;
    let got = 0;
    const body = async function* (): AsyncGenerator<Buffer> {
      if (started) throw new Error('tar entry body read twice');
      started = true;
      for await (const c of r.chunks(dataLen)) {
        got += c.length;
        yield c;
      }
    };
    yield { header, body };
    // Whatever the consumer left unread is skipped, so the next header is read in step.
    await r.skip(dataLen - got + pad(dataLen));
  }
}
