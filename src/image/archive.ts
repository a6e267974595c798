// Image archives: `tsrun load` (docker-archive from `docker save`, and oci-archive, an
// OCI image layout in a tar), `tsrun save` (oci-archive) and `tsrun import` (a rootfs
// tarball as a one-layer image).
//
// An archive is read in place: one pass records where each member's bytes are, and
// blobs are then streamed from those byte ranges. Member names from the archive's own
// metadata (manifest.json, index.json) are only ever looked up in that index, never
// joined to a host path, so a hostile archive cannot name a host file.
//
// Nothing becomes visible until the whole image is verified and unpacked: every blob is
// checked against its digest, every layer against the config's diff ID (image-spec
// config.md, rootfs.diff_ids) while it is unpacked into P/tmp; layers this load added
// are removed again if a later step fails.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, readSync, renameSync, rmSync, type ReadStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { TsrunError } from '../errors.js';
import { parseReference } from './reference.js';
import { type ImageConfigFile, type ImageRecord, type ImageStore, normalizeRef } from './store.js';
import { checksumOk, cstr, num, parsePax } from './tar-reader.js';
import { decompress, sniffCompression, unpackLayer } from './unpack.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/** image-spec annotations.md: the tag; and containerd's/docker's full image name. */
const REF_NAME = 'org.opencontainers.image.ref.name';
const IMAGE_NAME = 'io.containerd.image.name';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  manifests?: Descriptor[];
}

function bad(msg: string, hint = 'the archive is not a valid docker-archive or oci-archive'): TsrunError {
  return new TsrunError('IMAGE', msg, { hint });
}

export function hostPlatform(): { os: string; architecture: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

function layerMediaType(head: Uint8Array): string {
  const c = sniffCompression(head);
  return c === 'gzip' ? `${MEDIA.ociLayer}+gzip` : c === 'zstd' ? `${MEDIA.ociLayer}+zstd` : MEDIA.ociLayer;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

// ---------------------------------------------------------------- archive index

interface Member {
  offset: number;
  size: number;
}

/** Where each regular file of a tar file is. Symlinks and hardlinks (docker save links duplicate layers) are resolved within the archive. */
export class TarIndex {
  readonly files = new Map<string, Member>();
  private readonly links = new Map<string, string>();

  private constructor(readonly path: string) {}

  static open(path: string): TarIndex {
    const idx = new TarIndex(path);
    const fd = openSync(path, 'r');
    try {
      const total = fstatSync(fd).size;
      const h = Buffer.alloc(512);
      let off = 0;
      let pax: Record<string, Buffer> | null = null;
      let longName: string | null = null;
      const readAt = (len: number, at: number): Buffer => {
        const b = Buffer.alloc(len);
        if (readSync(fd, b, 0, len, at) !== len) throw bad(`${path}: archive is truncated`);
        return b;
      };
      for (;;) {
        if (off + 512 > total) throw bad(`${path}: archive is truncated or not a tar file`);
        readSync(fd, h, 0, 512, off);
        if (h.every((x) => x === 0)) break;
        if (!checksumOk(h)) throw bad(`${path}: not a tar archive (bad header checksum at byte ${off})`);
        const flag = String.fromCharCode(h[156]!);
        let size = num(h, 124, 12);
        const data = off + 512;
        const next = (n: number): number => data + n + ((512 - (n % 512)) % 512);
        if (flag === 'x' || flag === 'L') {
          if (size > 1 << 20) throw bad(`${path}: oversized extended header`);
          const b = readAt(size, data);
          if (flag === 'x') pax = parsePax(b);
          else longName = cstr(b, 0, b.length);
          off = next(size);
          continue;
        }
        const prefix = h.subarray(257, 263).toString('latin1') === 'ustar\0' ? cstr(h, 345, 155) : '';
        let name = longName ?? (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
        let link = cstr(h, 157, 100);
        if (pax?.path) name = pax.path.toString('utf8');
        if (pax?.linkpath) link = pax.linkpath.toString('utf8');
        if (pax?.size) size = Number(pax.size.toString('latin1'));
        pax = null;
        longName = null;
        const key = TarIndex.clean(name);
        if (flag === '0' || flag === '\0' || flag === '7') {
          if (data + size > total) throw bad(`${path}: archive is truncated (member ${name})`);
          idx.files.set(key, { offset: data, size });
        } else if (flag === '1') {
          idx.links.set(key, TarIndex.clean(link));
        } else if (flag === '2') {
          idx.links.set(key, TarIndex.clean(link.startsWith('/') ? link : posix.join(posix.dirname(key), link)));
        } else {
          size = flag === '5' ? 0 : size;
        }
        off = next(flag === '1' || flag === '2' || flag === '5' ? 0 : size);
      }
    } finally {
      closeSync(fd);
    }
    return idx;
  }

  static clean(name: string): string {
    return posix.normalize('/' + name).slice(1).replace(/\/$/, '');
  }

  find(name: string): Member | undefined {
    let key = TarIndex.clean(name);
    for (let i = 0; i < 16; i++) {
      const m = this.files.get(key);
      if (m) return m;
      const l = this.links.get(key);
      if (l === undefined) return undefined;
      key = l;
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.find(name) !== undefined;
  }

  get(name: string, what: string): Member {
    const m = this.find(name);
    if (!m) throw bad(`archive has no ${what} "${name}"`);
    return m;
  }

  read(name: string, what: string, max = 16 << 20): Buffer {
    const m = this.get(name, what);
    if (m.size > max) throw bad(`${what} "${name}" is too large (${m.size} bytes)`);
    const fd = openSync(this.path, 'r');
    try {
      const b = Buffer.alloc(m.size);
      readSync(fd, b, 0, m.size, m.offset);
      return b;
    } finally {
      closeSync(fd);
    }
  }

  stream(m: Member): ReadStream {
    // createReadStream's `end` is inclusive; an empty member gets an empty stream.
    return m.size === 0 ? createReadStream(this.path, { start: 1, end: 0 }) : createReadStream(this.path, { start: m.offset, end: m.offset + m.size - 1 });
  }

  head(m: Member): Buffer {
    const fd = openSync(this.path, 'r');
    try {
      const b = Buffer.alloc(Math.min(4, m.size));
      readSync(fd, b, 0, b.length, m.offset);
      return b;
    } finally {
      closeSync(fd);
    }
  }
}

function parseJson<T>(b: Buffer, what: string): T {
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch (e) {
    throw bad(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------- load

/** One image to bring in: its blobs as archive members, already parsed. */
interface Plan {
  manifestRaw: Buffer;
  manifestDigest: string;
  manifest: Manifest;
  configRaw: Buffer;
  config: ImageConfigFile;
  /** archive member of each blob, by digest */
  members: Map<string, Member>;
  repoTags: string[];
  /** extra blobs to keep (an index the manifest was chosen from) */
  extra: Array<{ digest: string; raw: Buffer }>;
}

export interface LoadResult {
  id: string;
  repoTags: string[];
}

/** Loads every image of a docker-archive or oci-archive; `file` may itself be gzip or zstd compressed. */
export async function loadArchive(store: ImageStore, file: string): Promise<LoadResult[]> {
  let tarPath = file;
  let tmp: string | undefined;
  try {
    const fd = openSync(file, 'r');
    const head = Buffer.alloc(4);
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    if (sniffCompression(head) !== 'none') {
      tmp = store.tempPath('archive');
      await pipeline(Readable.from(decompress(createReadStream(file))), createWriteStream(tmp, { mode: 0o600 }));
      tarPath = tmp;
    }
  } catch (e) {
    if (e instanceof TsrunError) throw e;
    throw new TsrunError('IMAGE', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const idx = TarIndex.open(tarPath);
    const plans = idx.has('oci-layout') && idx.has('index.json') ? ociPlans(idx) : idx.has('manifest.json') ? dockerPlans(idx) : null;
    if (!plans) throw bad(`${file}: neither a docker-archive (manifest.json) nor an oci-archive (oci-layout, index.json)`);
    if (plans.length === 0) throw bad(`${file}: the archive holds no image`);
    const out: LoadResult[] = [];
    for (const p of plans) out.push(await loadPlan(store, idx, p));
    return out;
  } finally {
    if (tmp) rmSync(tmp, { force: true });
  }
}

function checkManifest(m: Manifest, what: string): void {
  if (!m || typeof m !== 'object' || !m.config?.digest || !Array.isArray(m.layers)) throw bad(`${what} is not an image manifest`);
}

function ociPlans(idx: TarIndex): Plan[] {
  const layout = parseJson<{ imageLayoutVersion?: string }>(idx.read('oci-layout', 'oci-layout file'), 'oci-layout');
  if (!layout.imageLayoutVersion) throw bad('oci-layout has no imageLayoutVersion');
  const index = parseJson<{ manifests?: Descriptor[] }>(idx.read('index.json', 'index'), 'index.json');
  const blob = (d: Descriptor): { raw: Buffer; member: Member } => {
    const name = `blobs/${d.digest.replace(':', '/')}`;
    if (!/^sha256:[a-f0-9]{64}$/.test(d.digest)) throw bad(`unsupported digest "${d.digest}"`);
    return { raw: idx.read(name, `blob ${d.digest}`), member: idx.get(name, `blob ${d.digest}`) };
  };
  const byManifest = new Map<string, Plan>();
  for (const top of index.manifests ?? []) {
    let d = top;
    const extra: Plan['extra'] = [];
    let raw = blob(d).raw;
    if (sha256(raw) !== d.digest) throw bad(`index.json: blob ${d.digest} does not match its digest`, 'the archive is corrupt');
    let m = parseJson<Manifest>(raw, `manifest ${d.digest}`);
    if (d.mediaType === MEDIA.ociIndex || d.mediaType === MEDIA.dockerList || (m.manifests && !m.layers)) {
      extra.push({ digest: d.digest, raw });
      const want = hostPlatform();
      const pick = (m.manifests ?? []).find((x) => x.platform?.os === want.os && x.platform?.architecture === want.architecture) ?? (m.manifests?.length === 1 ? m.manifests[0] : undefined);
      if (!pick) throw bad(`index ${d.digest} has no image for ${want.os}/${want.architecture}`, 'load an archive built for this platform');
      d = pick;
      raw = blob(d).raw;
      if (sha256(raw) !== d.digest) throw bad(`manifest ${d.digest} does not match its digest`, 'the archive is corrupt');
      m = parseJson<Manifest>(raw, `manifest ${d.digest}`);
    }
    checkManifest(m, `manifest ${d.digest}`);
    const name = top.annotations?.[IMAGE_NAME] ?? top.annotations?.[REF_NAME];
    // ref.name is usually a bare tag ("latest"), which names no repository: such an image loads untagged.
    const tags = name && (name.includes('/') || name.includes(':')) ? [normalizeRef(name)] : [];
    const prev = byManifest.get(d.digest);
    if (prev) {
      prev.repoTags.push(...tags.filter((t) => !prev.repoTags.includes(t)));
      continue;
    }
    const cfg = blob(m.config);
    const members = new Map<string, Member>([[d.digest, blob(d).member], [m.config.digest, cfg.member]]);
    for (const l of m.layers) {
      if (!/^sha256:[a-f0-9]{64}$/.test(l.digest)) throw bad(`unsupported layer digest "${l.digest}"`);
      members.set(l.digest, idx.get(`blobs/sha256/${l.digest.slice(7)}`, `layer blob ${l.digest}`));
    }
    byManifest.set(d.digest, {
      manifestRaw: raw, manifestDigest: d.digest, manifest: m, configRaw: cfg.raw,
      config: parseJson<ImageConfigFile>(cfg.raw, `config ${m.config.digest}`), members, repoTags: tags, extra,
    });
  }
  return [...byManifest.values()];
}

function dockerPlans(idx: TarIndex): Plan[] {
  const list = parseJson<Array<{ Config?: string; RepoTags?: string[] | null; Layers?: string[] }>>(idx.read('manifest.json', 'manifest.json'), 'manifest.json');
  if (!Array.isArray(list)) throw bad('manifest.json is not a list');
  return list.map((e, i) => {
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers)) throw bad(`manifest.json entry ${i} lacks Config or Layers`);
    const configRaw = idx.read(e.Config, 'image config');
    const configDigest = sha256(configRaw);
    const members = new Map<string, Member>([[configDigest, idx.get(e.Config, 'image config')]]);
    const layers: Descriptor[] = e.Layers.map((path) => {
      const mem = idx.get(path, 'layer');
      // docker save writes uncompressed layer tars, so the blob digest is the diff ID; hashing it is one read of the member.
      const digest = digestOfMember(idx, mem);
      members.set(digest, mem);
      return { mediaType: layerMediaType(idx.head(mem)), digest, size: mem.size };
    });
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configRaw.length },
      layers,
    };
    const manifestRaw = Buffer.from(JSON.stringify(manifest));
    const manifestDigest = sha256(manifestRaw);
    return {
      manifestRaw, manifestDigest, manifest, configRaw, config: parseJson<ImageConfigFile>(configRaw, `config ${e.Config}`),
      members, repoTags: (e.RepoTags ?? []).map((t) => normalizeRef(t)), extra: [],
    };
  });
}

function digestOfMember(idx: TarIndex, m: Member): string {
  const fd = openSync(idx.path, 'r');
  try {
    const h = createHash('sha256');
    const buf = Buffer.alloc(1 << 20);
    for (let done = 0; done < m.size;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, m.size - done), m.offset + done);
      if (n <= 0) throw bad('archive is truncated');
      h.update(buf.subarray(0, n));
      done += n;
    }
    return `sha256:${h.digest('hex')}`;
  } finally {
    closeSync(fd);
  }
}

/** A pass-through that hashes what goes by. */
function hasher(): { t: Transform; digest: () => string } {
  const h = createHash('sha256');
  const t = new Transform({
    transform(c: Buffer, _e, cb) {
      h.update(c);
      cb(null, c);
    },
  });
  return { t, digest: () => `sha256:${h.digest('hex')}` };
}

/**
 * Unpacks each layer of an image from a stream source, verifying the blob digest and the
 * diff ID, and removes the layers it added if any step fails. Returns the uncompressed size.
 */
export async function addLayers(
  store: ImageStore,
  layers: Array<{ digest: string; diffId: string; open: () => Readable }>,
  then: () => Promise<void>,
): Promise<number> {
  const added: string[] = [];
  let size = 0;
  try {
    for (const l of layers) {
      if (store.hasLayer(l.diffId)) continue;
      let ran = false;
      await store.addLayer(l.diffId, async (dir) => {
        ran = true;
        const src = l.open();
        const h = hasher();
        src.on('error', (e) => h.t.destroy(e));
        src.pipe(h.t);
        try {
          const r = await unpackLayer(h.t, dir);
          h.t.resume();
          await new Promise<void>((res, rej) => (h.t.readableEnded ? res() : h.t.once('end', res).once('error', rej)));
          const got = h.digest();
          if (got !== l.digest) throw new TsrunError('IMAGE', `layer blob digest mismatch: expected ${l.digest}, got ${got}`, { hint: 'the archive is corrupt; nothing was stored' });
          if (r.diffId !== l.diffId) throw new TsrunError('IMAGE', `layer ${l.digest.slice(0, 19)} unpacks to diff ID ${r.diffId}, but the image config says ${l.diffId}`, { hint: 'the archive is corrupt; nothing was stored' });
          size += r.size;
        } finally {
          src.destroy();
          h.t.destroy();
        }
      });
      // Only a layer this call unpacked is ours to take back (when another load won the rename, it is theirs).
      if (ran) added.push(l.diffId);
    }
    await then();
    return size;
  } catch (e) {
    for (const d of added) {
      // Rename first, as removeImage does, so nobody sees a half-deleted layer under its name.
      const trash = store.tempPath('rmlayer');
      try {
        renameSync(store.layerPath(d), trash);
      } catch {
        continue;
      }
      rmSync(trash, { recursive: true, force: true });
    }
    throw e;
  }
}

async function loadPlan(store: ImageStore, idx: TarIndex, p: Plan): Promise<LoadResult> {
  const m = p.manifest;
  const diffIds = p.config.rootfs?.diff_ids ?? [];
  if (p.config.rootfs?.type !== 'layers' || diffIds.length !== m.layers.length) {
    throw bad(`image config ${m.config.digest} lists ${diffIds.length} diff IDs for ${m.layers.length} layers`, 'the archive is corrupt');
  }
  if (sha256(p.configRaw) !== m.config.digest) throw bad(`config blob does not match its digest ${m.config.digest}`, 'the archive is corrupt');
  const record: ImageRecord = {
    id: m.config.digest,
    manifestDigest: p.manifestDigest,
    repoTags: p.repoTags,
    repoDigests: [],
    layers: diffIds,
    config: p.config,
    created: p.config.created ?? new Date().toISOString(),
    size: m.layers.reduce((s, l) => s + l.size, 0) + m.config.size,
    platform: { os: p.config.os ?? 'linux', architecture: p.config.architecture ?? hostPlatform().architecture, ...(p.config.variant ? { variant: p.config.variant } : {}) },
    layerDigests: m.layers.map((l) => l.digest),
  };
  const layerSpecs = m.layers.map((l, i) => ({ digest: l.digest, diffId: diffIds[i]!, open: (): Readable => idx.stream(p.members.get(l.digest)!) }));
  await addLayers(store, layerSpecs, async () => {
    for (const l of m.layers) if (!store.hasBlob(l.digest)) await store.putBlob(idx.stream(p.members.get(l.digest)!), l.digest);
    await store.putBlob(p.configRaw, m.config.digest);
    for (const x of p.extra) await store.putBlob(x.raw, x.digest);
    await store.putBlob(p.manifestRaw, p.manifestDigest);
  });
  const stored = await store.putImage(record);
  return { id: stored.id, repoTags: p.repoTags };
}

// ---------------------------------------------------------------- save

/** Writes the images as one oci-archive; each is named by the reference it was asked by (or all its tags, when asked by id). */
export async function saveArchive(store: ImageStore, images: string[], out: Writable | string): Promise<void> {
  const descs: Descriptor[] = [];
  const blobs = new Set<string>();
  for (const name of images) {
    const rec = store.getImage(name);
    if (!rec) throw new TsrunError('IMAGE', `no such image: ${name}`, { hint: 'list images with: tsrun images' });
    if (!store.hasBlob(rec.manifestDigest)) throw new TsrunError('IMAGE', `image ${name}: its manifest ${rec.manifestDigest} is not in the store`, { hint: 'pull the image again' });
    const raw = await store.readBlob(rec.manifestDigest);
    const m = parseJson<Manifest>(raw, `manifest ${rec.manifestDigest}`);
    checkManifest(m, `manifest ${rec.manifestDigest}`);
    for (const d of [m.config, ...m.layers]) {
      if (!store.hasBlob(d.digest)) throw new TsrunError('IMAGE', `image ${name}: blob ${d.digest} is not in the store`, { hint: 'pull the image again' });
      blobs.add(d.digest);
    }
    blobs.add(rec.manifestDigest);
    const byRef = store.resolveRef(name) === rec.id && !/^(sha256:)?[a-f0-9]{4,64}$/.test(name);
    const refs = byRef ? [normalizeRef(name)] : rec.repoTags;
    const base: Descriptor = { mediaType: m.mediaType ?? MEDIA.ociManifest, digest: rec.manifestDigest, size: raw.length };
    if (refs.length === 0) descs.push(base);
    for (const r of refs) {
      const tag = parseReference(r).tag;
      descs.push({ ...base, annotations: { [IMAGE_NAME]: r, ...(tag ? { [REF_NAME]: tag } : {}) } });
    }
  }
  const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: descs };

  const tmp = typeof out === 'string' ? `${out}.tmp-${process.pid}` : undefined;
  const sink = typeof out === 'string' ? createWriteStream(tmp!, { mode: 0o644 }) : out;
  const p = pack();
  // Fixed times and owners: the same images make the same archive.
  const mtime = new Date(0);
  const common = { mtime, uid: 0, gid: 0, uname: '', gname: '' };
  const writing = pipeline(p, sink);
  const put = (name: string, data: Buffer): Promise<void> => new Promise((res, rej) => p.entry({ name, mode: 0o644, ...common }, data, (e) => (e ? rej(e) : res())));
  try {
    await put('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    await put('index.json', Buffer.from(JSON.stringify(index)));
    for (const d of ['blobs/', 'blobs/sha256/']) {
      await new Promise<void>((res, rej) => p.entry({ name: d, type: 'directory', mode: 0o755, ...common }, (e) => (e ? rej(e) : res())));
    }
    for (const digest of [...blobs].sort()) {
      const path = store.blobPath(digest);
      const size = fstatSize(path);
      await new Promise<void>((res, rej) => {
        const entry = p.entry({ name: `blobs/sha256/${digest.slice(7)}`, size, mode: 0o644, ...common }, (e) => (e ? rej(e) : res()));
        const src = createReadStream(path);
        src.on('error', rej);
        src.pipe(entry as unknown as Writable);
      });
    }
    p.finalize();
    await writing;
    if (tmp) renameSync(tmp, out as string);
  } catch (e) {
    p.destroy();
    if (tmp) rmSync(tmp, { force: true });
    throw e instanceof TsrunError ? e : new TsrunError('IMAGE', `writing the archive: ${(e as Error).message}`, { cause: e });
  }
}

function fstatSize(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------- import

export interface ImportOptions {
  /** a history comment (docker import --message) */
  message?: string;
}

/** A rootfs tarball (plain, gzip or zstd) as a one-layer image, tagged `ref` when given. */
export async function importRootfs(store: ImageStore, file: string, ref?: string, opts: ImportOptions = {}): Promise<ImageRecord> {
  const tag = ref ? normalizeRef(ref) : undefined;
  let head: Buffer;
  let blobSize: number;
  try {
    const fd = openSync(file, 'r');
    head = Buffer.alloc(4);
    readSync(fd, head, 0, 4, 0);
    blobSize = fstatSync(fd).size;
    closeSync(fd);
  } catch (e) {
    throw new TsrunError('IMAGE', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  // The blob is the file as given; the diff ID is the hash of the tar inside it.
  const blob = hasher();
  const diff = createHash('sha256');
  const src = createReadStream(file);
  src.on('error', (e) => blob.t.destroy(e));
  src.pipe(blob.t);
  for await (const c of decompress(blob.t)) diff.update(c);
  const blobDigest = blob.digest();
  const diffId = `sha256:${diff.digest('hex')}`;
  const mediaType = layerMediaType(head);

  const now = new Date().toISOString();
  const config: ImageConfigFile = {
    created: now,
    ...hostPlatform(),
    config: {},
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: now, created_by: 'tsrun import', ...(opts.message ? { comment: opts.message } : {}) }],
  };
  const configRaw = Buffer.from(JSON.stringify(config));
  const configDigest = sha256(configRaw);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configRaw.length },
    layers: [{ mediaType, digest: blobDigest, size: blobSize }],
  };
  const manifestRaw = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = sha256(manifestRaw);
  const size = await addLayers(store, [{ digest: blobDigest, diffId, open: () => createReadStream(file) }], async () => {
    await store.putBlob(createReadStream(file), blobDigest);
    await store.putBlob(configRaw, configDigest);
    await store.putBlob(manifestRaw, manifestDigest);
  });
  return store.putImage({
    id: configDigest,
    manifestDigest,
    repoTags: tag ? [tag] : [],
    repoDigests: [],
    layers: [diffId],
    config,
    created: now,
    size: size || blobSize,
    platform: hostPlatform(),
    layerDigests: [blobDigest],
  });
}
