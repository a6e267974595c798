// Builds OCI test images in memory at test time, without the internet: layers are tar
// streams made with tar-stream (optionally gzip'd), the busybox comes from Debian's
// busybox-static, and the result is a set of blobs plus a manifest, ready to push.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { ROOTFS_GROUPS, ROOTFS_USERS, findBusybox } from './rootfs.js';
import { tarOf } from './tar.js';

export interface TarFile {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device';
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
}

export interface Blob {
  digest: string;
  data: Buffer;
  mediaType: string;
}

export interface BuiltImage {
  manifest: Blob;
  config: Blob;
  layers: Blob[];
  diffIds: string[];
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function makeTar(files: TarFile[]): Promise<Buffer> {
  return tarOf(files.map((f) => {
    const type = f.type ?? 'file';
    const h = {
      name: f.name, type, mode: f.mode ?? (type === 'directory' ? 0o755 : 0o644), uid: f.uid ?? 0, gid: f.gid ?? 0,
      mtime: new Date(1700000000000), ...(f.linkname ? { linkname: f.linkname } : {}),
    };
    return { h, body: type === 'file' ? f.content ?? Buffer.alloc(0) : undefined };
  }));
}

let busyboxFiles: TarFile[] | undefined;
/** busybox-static as /bin/busybox plus one symlink per applet, /etc/passwd and /etc/group. */
export function busyboxTarFiles(): TarFile[] {
  if (busyboxFiles) return busyboxFiles;
  const bb = findBusybox();
  if (!bb) throw new Error('busybox-static is not installed: apt-get install -y busybox-static');
  const applets = execFileSync(bb, ['--list'], { encoding: 'utf8' }).split('\n').map((s) => s.trim()).filter((s) => s && s !== 'busybox' && !s.includes('/'));
  const passwd = ROOTFS_USERS.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home}:/bin/sh`).join('\n') + '\n';
  const group = ROOTFS_GROUPS.map((g) => `${g.name}:x:${g.gid}:${g.members.join(',')}`).join('\n') + '\n';
  busyboxFiles = [
    ...['bin/', 'etc/', 'proc/', 'sys/', 'dev/', 'home/', 'var/', 'run/'].map((name) => ({ name, type: 'directory' as const })),
    { name: 'root/', type: 'directory', mode: 0o700 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'home/user/', type: 'directory', uid: 1000, gid: 1000 },
    { name: 'bin/busybox', content: readFileSync(bb), mode: 0o755 },
    ...applets.map((a) => ({ name: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' })),
    { name: 'etc/passwd', content: passwd },
    { name: 'etc/group', content: group },
  ];
  return busyboxFiles;
}

export interface ImageSpec {
  /** each layer's files, bottom first */
  layers: TarFile[][];
  config?: Record<string, unknown>;
  architecture?: string;
  variant?: string;
  /** 'gzip' (default), 'zstd' (needs the zstd tool) or 'none'; one per layer, or one for all */
  compression?: Compression | Compression[];
  /** Docker schema2 media types instead of OCI's */
  docker?: boolean;
}

type Compression = 'gzip' | 'zstd' | 'none';

const LAYER_MEDIA: Record<Compression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar',
};

function compress(tar: Buffer, c: Compression): Buffer {
  if (c === 'none') return tar;
  if (c === 'zstd') return execFileSync('zstd', ['-q', '-c', '-1'], { input: tar, maxBuffer: 1 << 30 });
  return gzipSync(tar, { level: 1 });
}

export async function buildImage(spec: ImageSpec): Promise<BuiltImage> {
  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (const [i, files] of spec.layers.entries()) {
    const tar = await makeTar(files);
    diffIds.push(sha256(tar));
    const c = (Array.isArray(spec.compression) ? spec.compression[i] : spec.compression) ?? 'gzip';
    const data = compress(tar, c);
    const mediaType = spec.docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : LAYER_MEDIA[c];
    layers.push({ digest: sha256(data), data, mediaType });
  }
  const configJson = {
    created: '2024-01-01T00:00:00Z',
    architecture: spec.architecture ?? 'amd64',
    ...(spec.variant ? { variant: spec.variant } : {}),
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], ...spec.config },
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
  const cdata = Buffer.from(JSON.stringify(configJson));
  const config: Blob = { digest: sha256(cdata), data: cdata, mediaType: spec.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json' };
  const manifestType = spec.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
  const mdata = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: manifestType,
    config: { mediaType: config.mediaType, digest: config.digest, size: cdata.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length })),
  }));
  return { manifest: { digest: sha256(mdata), data: mdata, mediaType: manifestType }, config, layers, diffIds };
}

export function buildIndex(entries: { image: BuiltImage; platform: { os: string; architecture: string; variant?: string } }[], docker = false): Blob {
  const mediaType = docker ? 'application/vnd.docker.distribution.manifest.list.v2+json' : 'application/vnd.oci.image.index.v1+json';
  const data = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: entries.map((e) => ({ mediaType: e.image.manifest.mediaType, digest: e.image.manifest.digest, size: e.image.manifest.data.length, platform: e.platform })),
  }));
  return { digest: sha256(data), data, mediaType };
}

/** The host's platform in OCI terms. */
export function hostArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}
