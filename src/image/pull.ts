// `tsrun pull`: manifest (choosing a platform from an index), config, then every layer
// downloaded in parallel, each one hashed into the blob store *and* decompressed and
// unpacked while it streams. A layer becomes visible only when both its compressed
// digest and its diff ID check out.
import { tracer } from '../trace/tracer.js';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { arch } from 'node:os';
import { Transform, type Readable } from 'node:stream';
import { TsrunError } from '../errors.js';
import { type ImageRef, formatReference, manifestReference, parseReference, refName } from './reference.js';
import { type Descriptor, type Manifest, MEDIA, RegistryClient, type RegistryOptions, isRetryable, withRetries } from './registry.js';
import { type ImageConfigFile, type ImageRecord, ImageStore, MissingLayers } from './store.js';
import { Unpackers } from './unpackers.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export function hostPlatform(): Platform {
  const a = arch();
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const architecture = map[a] ?? a;
  if (architecture === 'arm') {
    const v = (process.config.variables as unknown as Record<string, unknown>).arm_version;
    return { os: 'linux', architecture, variant: `v${String(v ?? '7')}` };
  }
  return { os: 'linux', architecture };
}

export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new TsrunError('USAGE', `--platform ${s}: expected OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7`);
  }
  const alias: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm' };
  return { os: parts[0]!, architecture: alias[parts[1]!] ?? parts[1]!, ...(parts[2] ? { variant: parts[2] } : {}) };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? '/' + p.variant : ''}`;
}

/** containerd's rule: arm64's default variant is v8, so "linux/arm64" and "linux/arm64/v8" are the same. */
function normVariant(p: Platform): string | undefined {
  if (p.architecture === 'arm64' && (!p.variant || p.variant === 'v8')) return undefined;
  return p.variant;
}

export function selectPlatform(manifests: Descriptor[], want: Platform, explicit: boolean): Descriptor {
  const candidates = manifests.filter((m) => m.platform && m.platform.os === want.os && m.platform.architecture === want.architecture);
  const wantV = normVariant(want);
  let hit = candidates.find((m) => normVariant(m.platform!) === wantV);
  // Without an explicit variant, any variant of the architecture will do (docker does the same for amd64 v2/v3).
  if (!hit && !explicit) hit = candidates[0];
  if (!hit && !want.variant && candidates.length) hit = candidates[0];
  if (!hit) {
    const have = manifests.filter((m) => m.platform && m.platform.os !== 'unknown').map((m) => formatPlatform(m.platform!)).join(', ');
    throw new TsrunError('IMAGE', `no image for platform ${formatPlatform(want)} in the index`, { hint: `this image is built for: ${have || 'no listed platforms'}; choose one with --platform` });
  }
  return hit;
}

export interface PullOptions extends RegistryOptions {
  platform?: string;
  /** progress lines go here (stderr/stdout); nothing when undefined */
  progress?: NodeJS.WritableStream & { isTTY?: boolean };
  concurrency?: number;
}

/**
 * A Transform that hashes the compressed bytes and writes them to a temp blob on their
 * way to the unpacker. The write is synchronous on purpose: a network chunk is 16-64 kB,
 * and a round trip through libuv's thread pool per chunk (futex handoffs) costs more
 * than the write itself on a busy 2-core machine.
 */
function teeToBlob(path: string, onBytes: (n: number) => void): { tee: Transform; hash: () => string; size: () => number; done: () => Promise<void> } {
  const h = createHash('sha256');
  let size = 0;
  let fd: number | null = openSync(path, 'wx', 0o644);
  const closeFd = (): void => {
    if (fd !== null) closeSync(fd);
    fd = null;
  };
  const tee = new Transform({
    transform(chunk: Buffer, _e, cb) {
      try {
        h.update(chunk);
        size += chunk.length;
        onBytes(chunk.length);
        for (let off = 0; off < chunk.length; ) off += writeSync(fd!, chunk, off, chunk.length - off);
        cb(null, chunk);
      } catch (e) {
        cb(e as Error);
      }
    },
    destroy(err, cb) {
      closeFd();
      cb(err);
    },
  });
  return {
    tee,
    hash: () => `sha256:${h.digest('hex')}`,
    size: () => size,
    done: async () => closeFd(),
  };
}

class Progress {
  private readonly tty: boolean;
  private readonly rows = new Map<string, { status: string; done: number; total: number }>();
  private drawn = 0;
  private out: PullOptions['progress'];
  constructor(out: PullOptions['progress']) {
    this.out = out;
    this.tty = out?.isTTY === true;
    // A reader that goes away (`tsrun pull | head`) must not fail the pull: stop reporting.
    out?.on('error', () => {
      this.out = undefined;
    });
  }
  line(s: string): void {
    if (!this.out) return;
    this.out.write(s + '\n');
    // The block of layer rows above stays as it is; later rows start a new block.
    this.drawn = 0;
    this.rows.clear();
  }
  layer(digest: string, status: string, done = 0, total = 0): void {
    if (!this.out) return;
    const id = digest.slice(7, 19);
    const prev = this.rows.get(id);
    this.rows.set(id, { status, done, total });
    if (this.tty) this.redraw();
    else if (prev?.status !== status) this.out.write(`${id}: ${status}\n`);
  }
  private redraw(): void {
    if (!this.out || !this.tty) return;
    let s = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const [id, r] of this.rows) {
      let bar = '';
      if (r.status === 'Downloading' && r.total) {
        const w = 40;
        const n = Math.min(w, Math.floor((r.done / r.total) * w));
        bar = ` [${'='.repeat(Math.max(0, n - 1))}${n ? '>' : ''}${' '.repeat(w - n)}] ${mb(r.done)}/${mb(r.total)}`;
      }
      s += `\x1b[2K${id}: ${r.status}${bar}\n`;
    }
    this.drawn = this.rows.size;
    this.out.write(s);
  }
}

function mb(n: number): string {
  return n < 1e6 ? `${(n / 1e3).toFixed(1)}kB` : `${(n / 1e6).toFixed(1)}MB`;
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length && failed === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

const LAYER_TYPES = /^application\/vnd\.(oci\.image\.layer\.v1\.tar(\+gzip|\+zstd)?|docker\.image\.rootfs\.diff\.tar\.gzip)$/;

function compressionOf(mediaType: string): 'auto' | 'gzip' | 'zstd' | 'none' {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd')) return 'zstd';
  if (mediaType.endsWith('.tar')) return 'none';
  return 'auto';
}

export async function pullImage(store: ImageStore, refText: string, opts: PullOptions = {}): Promise<ImageRecord> {
  const ref = parseReference(refText);
  const client = new RegistryClient(ref.registry, ref.repository, opts);
  const progress = new Progress(opts.progress);
  const unpackers = new Unpackers();
  try {
    return await doPull(store, ref, client, progress, opts, unpackers);
  } finally {
    client.close();
    await unpackers.close();
  }
}

async function doPull(store: ImageStore, ref: ImageRef, client: RegistryClient, progress: Progress, opts: PullOptions, unpackers: Unpackers): Promise<ImageRecord> {
  const name = formatReference(ref);
  progress.line(`${ref.tag ?? ref.digest}: Pulling from ${ref.repository}`);
  let t0 = tracer.on ? tracer.now() : undefined;
  const top = await client.getManifest(manifestReference(ref));
  tracer.step('image', 'manifest', `${name} -> ${top.digest} (${top.mediaType})`, 'ask the registry what the reference names; everything after is fetched by digest, so it cannot change under us', t0);
  let m: Manifest = top.manifest;
  let manifestRaw = top.raw;
  let manifestDigest = top.digest;
  const want = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
  if (top.mediaType === MEDIA.ociIndex || top.mediaType === MEDIA.dockerList || (m.manifests && !m.layers)) {
    const d = selectPlatform(m.manifests ?? [], want, !!opts.platform);
    t0 = tracer.on ? tracer.now() : undefined;
    const sub = await client.getManifest(d.digest);
    tracer.step('image', 'platform', `${formatPlatform(want)} -> ${d.digest}`, 'a multi-platform index: take the manifest built for this machine', t0);
    m = sub.manifest;
    manifestRaw = sub.raw;
    manifestDigest = sub.digest;
  }
  if (!m.config || !m.layers) throw new TsrunError('IMAGE', `${name}: the manifest has no config or layers`, { hint: 'only OCI and Docker schema 2 image manifests can be pulled' });
  for (const l of m.layers) {
    if (!LAYER_TYPES.test(l.mediaType)) throw new TsrunError('IMAGE', `${name}: layer ${l.digest.slice(0, 19)} has unsupported media type ${l.mediaType}`, { hint: 'tsrun handles tar, tar+gzip and tar+zstd layers' });
  }

  const cfgBlob = store.hasBlob(m.config.digest)
    ? { digest: m.config.digest, size: m.config.size }
    : await withRetries(`config ${m.config.digest}`, 3, async () => {
      const b = await client.getBlob(m.config!.digest);
      return store.putBlob(b.body, m.config!.digest, m.config!.size);
    });
  const config = JSON.parse((await store.readBlob(cfgBlob.digest)).toString('utf8')) as ImageConfigFile;
  tracer.step('image', 'config', cfgBlob.digest, 'the image config (its digest is the image id): entrypoint, env, user, and the diff IDs of the layers');
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== m.layers.length) {
    throw new TsrunError('IMAGE', `${name}: the config lists ${diffIds.length} diff IDs for ${m.layers.length} layers`, { hint: 'the image is malformed' });
  }
  if (opts.platform && config.architecture && config.architecture !== want.architecture) {
    throw new TsrunError('IMAGE', `${name} is for ${config.os}/${config.architecture}, not ${formatPlatform(want)}`);
  }

  const jobs = m.layers.map((l, i) => ({ desc: l, diffId: diffIds[i]! }));
  unpackers.startThreads(jobs.filter((j) => !store.hasLayer(j.diffId)).length);
  const before = store.getImage(cfgBlob.digest);
  let fetched = 0;
  const fetchLayers = (): Promise<void> => pool(jobs, opts.concurrency ?? 4, async ({ desc, diffId }) => {
    if (store.hasLayer(diffId) && store.hasBlob(desc.digest)) {
      progress.layer(desc.digest, 'Already exists');
      tracer.step('image', 'layer', `${desc.digest} = ${store.layerPath(diffId)}`, 'already unpacked by an earlier pull: layers are stored once, by diff ID, and shared');
      return;
    }
    const lt0 = tracer.on ? tracer.now() : undefined;
    progress.layer(desc.digest, 'Pulling fs layer');
    fetched++;
    await withRetries(`layer ${desc.digest.slice(0, 19)}`, 3, async () => {
      if (store.hasBlob(desc.digest)) {
        // The compressed blob is here (an earlier pull, a load): unpack from disk.
        await store.addLayer(diffId, async (dir) => {
          const r = await unpackers.unpack(createReadStream(store.blobPath(desc.digest)), dir, compressionOf(desc.mediaType));
          if (r.diffId !== diffId) throw diffMismatch(name, desc, diffId, r.diffId);
        });
        progress.layer(desc.digest, 'Pull complete');
        return;
      }
      const blob = await client.getBlob(desc.digest);
      const tmp = store.tempPath('blob');
      let done = 0;
      const t = teeToBlob(tmp, (n) => {
        done += n;
        progress.layer(desc.digest, 'Downloading', done, desc.size);
      });
      let bodyError: unknown;
      blob.body.on('error', (e) => {
        bodyError = e;
        t.tee.destroy(e);
      });
      const src = blob.body.pipe(t.tee);
      try {
        const finish = async (): Promise<void> => {
          await t.done();
          if (bodyError) throw bodyError;
          if (t.size() !== desc.size) {
            throw new TsrunError('IMAGE', `layer ${desc.digest}: got ${t.size()} bytes, expected ${desc.size}`, { hint: 'the download was truncated or the registry is serving bad content; nothing was stored' });
          }
          const got = t.hash();
          if (got !== desc.digest) throw new TsrunError('IMAGE', `layer digest mismatch: expected ${desc.digest}, got ${got}`, { hint: 'the registry served content that does not match its digest; nothing was stored' });
        };
        if (store.hasLayer(diffId)) {
          src.resume();
          await new Promise<void>((res, rej) => {
            src.on('end', res);
            src.on('error', rej);
          });
          await finish();
        } else {
          await store.addLayer(diffId, async (dir) => {
            let r: { diffId: string };
            try {
              r = await unpackers.unpack(src as Readable, dir, compressionOf(desc.mediaType));
            } catch (e) {
              if (bodyError) throw bodyError;
              // Read the rest, so a truncated or corrupt download is reported as such
              // rather than as the decompressor's complaint about it.
              src.resume();
              await new Promise<void>((res) => (src.readableEnded ? res() : src.once('end', res).once('error', () => res())));
              await finish();
              throw e;
            }
            // Drain anything after the end of the tar (padding), so the digest covers every byte.
            src.resume();
            await new Promise<void>((res) => (src.readableEnded ? res() : src.once('end', res).once('error', () => res())));
            await finish();
            if (r.diffId !== diffId) throw diffMismatch(name, desc, diffId, r.diffId);
          });
        }
        renameSync(tmp, store.blobPath(desc.digest));
      } catch (e) {
        blob.body.destroy();
        await t.done();
        rmSync(tmp, { force: true });
        if (isRetryable(e)) progress.layer(desc.digest, 'Retrying');
        throw e;
      }
      progress.layer(desc.digest, 'Pull complete');
      tracer.step('image', 'layer', `${desc.digest} -> ${store.layerPath(diffId)}`, 'downloaded while unpacking, checked against its digest and its diff ID (the uncompressed tar), then renamed into place', lt0);
    });
  });

  await fetchLayers();
  const top2 = await store.putBlob(manifestRaw, manifestDigest);
  if (top.digest !== manifestDigest) await store.putBlob(top.raw, top.digest);
  const repoDigest = `${refName(ref)}@${top.digest}`;
  const record: ImageRecord = {
    id: cfgBlob.digest,
    manifestDigest: top2.digest,
    repoTags: ref.tag ? [`${refName(ref)}:${ref.tag}`] : [],
    repoDigests: [repoDigest],
    layers: diffIds,
    config,
    created: config.created ?? new Date().toISOString(),
    size: m.layers.reduce((s, l) => s + l.size, 0) + m.config.size,
    platform: { os: config.os ?? want.os, architecture: config.architecture ?? want.architecture, ...(config.variant ? { variant: config.variant } : {}) },
    layerDigests: m.layers.map((l) => l.digest),
  };
  let stored: ImageRecord | undefined;
  for (let round = 0; !stored; round++) {
    if (round > 0) await fetchLayers();
    try {
      stored = await store.putImage(record, { requireLayers: true });
    } catch (e) {
      if (!(e instanceof MissingLayers) || round >= 2) throw e;
    }
  }
  progress.line(`Digest: ${top.digest}`);
  const fresh = fetched > 0 || !before || !before.repoTags.every((t) => stored.repoTags.includes(t)) || (ref.tag !== undefined && !before.repoTags.includes(`${refName(ref)}:${ref.tag}`));
  progress.line(fresh ? `Status: Downloaded newer image for ${name}` : `Status: Image is up to date for ${name}`);
  return stored;
}

function diffMismatch(name: string, desc: Descriptor, want: string, got: string): TsrunError {
  return new TsrunError('IMAGE', `${name}: layer ${desc.digest.slice(0, 19)} unpacks to diff ID ${got}, but the config says ${want}`, { hint: 'the image is corrupt; nothing was stored for this layer' });
}

/** The repo digest a pull reports (the index's when there is one). */
export function pulledDigest(rec: ImageRecord, ref: string): string {
  const r = parseReference(ref);
  const d = rec.repoDigests.find((x) => x.startsWith(refName(r) + '@'));
  return d ? d.slice(d.indexOf('@') + 1) : rec.manifestDigest;
}
