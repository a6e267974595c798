// The image store under tsrun's persistent root P (see the D1/D2 contract):
//   P/blobs/sha256/<hex>        content-addressed blobs, verified before they appear
//   P/layers/<diffid-hex>/      one unpacked layer per diff ID, shared by every image
//   P/images/<config-hex>.json  image records
//   P/repositories.json         reference -> image id
//   P/tmp/                      staging: everything is built here, then renamed in
// rename(2) within one filesystem is atomic, so a reader sees a whole blob or layer or
// nothing; a crash leaves only debris in P/tmp, which is safe to delete.
import { withFileLockAsync } from '../runtime/lock.js';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync, createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync,
  renameSync, rmSync, statSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TsrunError } from '../errors.js';
import { formatReference, isDigest, parseReference } from './reference.js';

export interface ImageRecord {
  /** sha256:<config digest> */
  id: string;
  manifestDigest: string;
  repoTags: string[];
  repoDigests: string[];
  /** diff IDs, bottom layer first */
  layers: string[];
  /** the OCI image config JSON */
  config: ImageConfigFile;
  created: string;
  /** unpacked size in bytes */
  size: number;
  platform: { os: string; architecture: string; variant?: string };
  /** compressed layer blob digests, in manifest order (optional: archives may lack them) */
  layerDigests?: string[];
}

export interface ImageConfigFile {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
    ExposedPorts?: Record<string, object> | null;
    Volumes?: Record<string, object> | null;
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: unknown[];
}

const HEX = /^[a-f0-9]{64}$/;

export function hexOf(digest: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice(7) : digest;
  if (!HEX.test(hex)) throw new TsrunError('IMAGE', `invalid digest "${digest}"`, { hint: 'digests look like sha256:<64 hex digits>' });
  return hex;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ImageStore {
  readonly blobsDir: string;
  readonly layersDir: string;
  readonly imagesDir: string;
  readonly tmpDir: string;
  readonly reposFile: string;

  constructor(readonly root: string) {
    this.blobsDir = join(root, 'blobs', 'sha256');
    this.layersDir = join(root, 'layers');
    this.imagesDir = join(root, 'images');
    this.tmpDir = join(root, 'tmp');
    this.reposFile = join(root, 'repositories.json');
  }

  private ensureDirs(): void {
    for (const d of [this.blobsDir, this.layersDir, this.imagesDir, this.tmpDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
    // Layers are overlay lowerdirs: the container's non-root users need to pass through.
    chmodSync(this.layersDir, 0o711);
  }

  /** A fresh private staging name in P/tmp (same filesystem as the targets, so rename works). */
  tempPath(prefix = 'tmp'): string {
    this.ensureDirs();
    return join(this.tmpDir, `${prefix}-${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  blobPath(digest: string): string {
    return join(this.blobsDir, hexOf(digest));
  }

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  async readBlob(digest: string): Promise<Buffer> {
    return readFile(this.blobPath(digest));
  }

  /**
   * Streams `source` into a temp file while hashing it; renames it into place only if
   * the digest matches `expected` (when given). A mismatch stores nothing.
   */
  async putBlob(source: Readable | Buffer, expected?: string, expectedSize?: number): Promise<{ digest: string; size: number }> {
    if (expected) hexOf(expected);
    const tmp = this.tempPath('blob');
    const hash = createHash('sha256');
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(Buffer.isBuffer(source) ? Readable.from([source]) : source, counter, createWriteStream(tmp, { mode: 0o644 }));
      const digest = `sha256:${hash.digest('hex')}`;
      if (expectedSize !== undefined && size !== expectedSize) {
        throw new TsrunError('IMAGE', `blob ${expected ?? digest}: got ${size} bytes, expected ${expectedSize}`, { hint: 'the download was truncated or the registry is serving bad content; nothing was stored' });
      }
      if (expected && digest !== expected) {
        throw new TsrunError('IMAGE', `digest mismatch: expected ${expected}, got ${digest}`, { hint: 'the registry served content that does not match its digest; nothing was stored' });
      }
      renameSync(tmp, this.blobPath(digest));
      return { digest, size };
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  layerPath(diffId: string): string {
    return join(this.layersDir, hexOf(diffId));
  }

  hasLayer(diffId: string): boolean {
    return existsSync(this.layerPath(diffId));
  }

  /**
   * Unpacks a layer once. `unpack` fills a private temp dir, which is then renamed into
   * place. When two pulls race, rename(2) refuses the loser (ENOTEMPTY/EEXIST); the
   * loser throws its copy away and uses the winner's, which has the same content.
   */
  async addLayer(diffId: string, unpack: (tmpDir: string) => Promise<void>): Promise<string> {
    const dest = this.layerPath(diffId);
    if (existsSync(dest)) return dest;
    this.ensureDirs();
    const tmp = this.tempPath('layer');
    mkdirSync(tmp, { mode: 0o755 });
    try {
      chmodSync(tmp, 0o755);
      await unpack(tmp);
      if (existsSync(dest)) return dest;
      try {
        renameSync(tmp, dest);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      }
      return dest;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  // ---- image records ----

  private imagePath(id: string): string {
    return join(this.imagesDir, `${hexOf(id)}.json`);
  }

  private writeAtomic(path: string, text: string): void {
    const tmp = this.tempPath('json');
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, path);
  }

  /** A cross-process lock (src/runtime/lock.ts) on the store's shared files. */
  async withLock<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    this.ensureDirs();
    return withFileLockAsync(join(this.root, `${name}.lock`), fn, { what: `the image store's ${name}`, code: 'IMAGE' });
  }

  readRepositories(): Record<string, string> {
    try {
      return JSON.parse(readFileSync(this.reposFile, 'utf8')) as Record<string, string>;
    } catch {
      return {};
    }
  }

  private writeRepositories(repos: Record<string, string>): void {
    this.writeAtomic(this.reposFile, JSON.stringify(repos, null, 2) + '\n');
  }

  readImage(id: string): ImageRecord | null {
    try {
      return JSON.parse(readFileSync(this.imagePath(id), 'utf8')) as ImageRecord;
    } catch {
      return null;
    }
  }

  /** Stores a record and points each of its repoTags at it (merging with an existing record's tags). */
  async putImage(record: ImageRecord, opts: { requireLayers?: boolean } = {}): Promise<ImageRecord> {
    this.ensureDirs();
    return this.withLock('repositories', () => {
      // Checked under the lock that removeImage holds: an rmi that raced with our pull
      // may have deleted a layer we found present and skipped.
      const missing = opts.requireLayers ? record.layers.filter((l) => !this.hasLayer(l)) : [];
      if (missing.length) throw new MissingLayers(missing);
      const old = this.readImage(record.id);
      const repoTags = [...new Set([...(old?.repoTags ?? []), ...record.repoTags.map(normalizeRef)])];
      const repoDigests = [...new Set([...(old?.repoDigests ?? []), ...record.repoDigests])];
      const repos = this.readRepositories();
      for (const t of repoTags) {
        const prev = repos[t];
        if (prev && prev !== record.id) this.dropTag(prev, t);
        repos[t] = record.id;
      }
      const merged = { ...record, repoTags, repoDigests };
      this.writeAtomic(this.imagePath(record.id), JSON.stringify(merged, null, 2) + '\n');
      this.writeRepositories(repos);
      return merged;
    });
  }

  private dropTag(id: string, ref: string): void {
    const rec = this.readImage(id);
    if (!rec) return;
    rec.repoTags = rec.repoTags.filter((t) => t !== ref);
    this.writeAtomic(this.imagePath(id), JSON.stringify(rec, null, 2) + '\n');
  }

  listImages(): ImageRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.imagesDir);
    } catch {
      return [];
    }
    const out: ImageRecord[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const r = this.readImage(n.slice(0, -5));
      if (r) out.push(r);
    }
    return out.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? ''));
  }

  /** The image id a reference points at, or undefined. */
  resolveRef(ref: string): string | undefined {
    let norm: string;
    try {
      norm = normalizeRef(ref);
    } catch {
      return undefined;
    }
    const repos = this.readRepositories();
    if (repos[norm]) return repos[norm];
    const r = parseReference(ref);
    if (r.digest) {
      const want = `${r.registry}/${r.repository}@${r.digest}`;
      for (const img of this.listImages()) if (img.repoDigests.includes(want) || (img.manifestDigest === r.digest && img.repoTags.some((t) => t.startsWith(`${r.registry}/${r.repository}:`)))) return img.id;
    }
    return undefined;
  }

  /** By full or short id (with or without sha256:), or by reference. */
  getImage(idOrRef: string): ImageRecord | null {
    const s = idOrRef.startsWith('sha256:') ? idOrRef.slice(7) : idOrRef;
    if (/^[a-f0-9]{64}$/.test(s)) return this.readImage(s);
    const byRef = this.resolveRef(idOrRef);
    if (byRef) return this.readImage(byRef);
    if (/^[a-f0-9]{4,63}$/.test(s)) {
      const hits = this.listImages().filter((i) => hexOf(i.id).startsWith(s));
      if (hits.length === 1) return hits[0]!;
      if (hits.length > 1) throw new TsrunError('IMAGE', `short id "${s}" is ambiguous: ${hits.length} images match`, { hint: 'give more digits of the id' });
    }
    return null;
  }

  async tag(ref: string, id: string): Promise<void> {
    const norm = normalizeRef(ref);
    await this.withLock('repositories', () => {
      const rec = this.readImage(id);
      if (!rec) throw new TsrunError('IMAGE', `no such image: ${id}`);
      const repos = this.readRepositories();
      const prev = repos[norm];
      if (prev && prev !== rec.id) this.dropTag(prev, norm);
      repos[norm] = rec.id;
      if (!rec.repoTags.includes(norm)) rec.repoTags.push(norm);
      this.writeAtomic(this.imagePath(rec.id), JSON.stringify(rec, null, 2) + '\n');
      this.writeRepositories(repos);
    });
  }

  /** Removes one reference; returns the id it pointed at. */
  async untag(ref: string): Promise<string | undefined> {
    const norm = normalizeRef(ref);
    return this.withLock('repositories', () => {
      const repos = this.readRepositories();
      const id = repos[norm];
      if (!id) return undefined;
      delete repos[norm];
      this.dropTag(id, norm);
      this.writeRepositories(repos);
      return id;
    });
  }

  /** Container ids whose record names this image (P/containers/<id>/image.json). */
  containersUsing(id: string): string[] {
    const dir = join(this.root, 'containers');
    let ids: string[];
    try {
      ids = readdirSync(dir);
    } catch {
      return [];
    }
    return ids.filter((c) => {
      try {
        return (JSON.parse(readFileSync(join(dir, c, 'image.json'), 'utf8')) as { image?: string }).image === id;
      } catch {
        return false;
      }
    });
  }

  /**
   * Deletes an image: its record, its tags, and the layers and blobs that no other image
   * uses. Refuses while a container uses it, unless forced.
   */
  async removeImage(id: string, opts: { force?: boolean } = {}): Promise<{ untagged: string[]; deleted: string[] }> {
    return this.withLock('repositories', async () => {
      const rec = this.readImage(id);
      if (!rec) throw new TsrunError('IMAGE', `no such image: ${id}`);
      const users = this.containersUsing(rec.id);
      if (users.length && !opts.force) {
        throw new TsrunError('IMAGE', `image ${hexOf(rec.id).slice(0, 12)} is in use by container ${users[0]!.slice(0, 12)}${users.length > 1 ? ` and ${users.length - 1} more` : ''}`, { hint: 'remove the container first, or force with rmi -f' });
      }
      const others = this.listImages().filter((i) => i.id !== rec.id);
      const keepLayers = new Set(others.flatMap((i) => i.layers));
      const keepBlobs = new Set<string>();
      for (const o of others) {
        keepBlobs.add(o.id);
        keepBlobs.add(o.manifestDigest);
        for (const d of o.repoDigests) keepBlobs.add(d.slice(d.indexOf('@') + 1));
        for (const d of o.layerDigests ?? (await this.manifestLayers(o.manifestDigest))) keepBlobs.add(d);
      }
      const repos = this.readRepositories();
      const untagged = Object.keys(repos).filter((r) => repos[r] === rec.id);
      for (const r of untagged) delete repos[r];
      this.writeRepositories(repos);
      unlinkSync(this.imagePath(rec.id));
      const deleted = [rec.id];
      const blobs = new Set([rec.id, rec.manifestDigest, ...rec.repoDigests.map((d) => d.slice(d.indexOf('@') + 1)), ...(rec.layerDigests ?? (await this.manifestLayers(rec.manifestDigest)))]);
      for (const b of blobs) if (!keepBlobs.has(b) && isDigest(b)) rmSync(this.blobPath(b), { force: true });
      for (const l of rec.layers) {
        if (keepLayers.has(l)) continue;
        // Rename first so a concurrent reader never sees a half-deleted layer under its name.
        const p = this.layerPath(l);
        const trash = this.tempPath('rmlayer');
        try {
          renameSync(p, trash);
        } catch {
          continue;
        }
        rmSync(trash, { recursive: true, force: true });
        deleted.push(l);
      }
      return { untagged, deleted };
    });
  }

  private async manifestLayers(manifestDigest: string): Promise<string[]> {
    try {
      const m = JSON.parse((await this.readBlob(manifestDigest)).toString('utf8')) as { layers?: { digest: string }[] };
      return (m.layers ?? []).map((l) => l.digest);
    } catch {
      return [];
    }
  }

  /** Removes staging debris of dead tsrun processes. */
  cleanTmp(): void {
    let names: string[];
    try {
      names = readdirSync(this.tmpDir);
    } catch {
      return;
    }
    for (const n of names) {
      const pid = Number(/^[a-z]+-(\d+)-/.exec(n)?.[1]);
      if (pid && pidAlive(pid)) continue;
      if (!pid) {
        try {
          if (Date.now() - statSync(join(this.tmpDir, n)).mtimeMs < 3600_000) continue;
        } catch {
          continue;
        }
      }
      rmSync(join(this.tmpDir, n), { recursive: true, force: true });
    }
  }
}

export class MissingLayers extends TsrunError {
  constructor(readonly layers: string[]) {
    super('IMAGE', `layers vanished while the image was stored: ${layers.join(', ')}`, { hint: 'another tsrun removed them (rmi, prune); pull again' });
  }
}

/** docker.io/library/busybox:latest for "busybox"; digests are kept. */
export function normalizeRef(ref: string): string {
  return formatReference(parseReference(ref));
}
