// tsrun load / save / import through the real CLI, against archives built at test time:
// oci-archives and docker-archives from our own writer, and from skopeo when it is
// installed (an independent implementation of both formats).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { type BuiltImage, type TarFile, buildImage, busyboxTarFiles, hostArch, makeTar, sha256 } from '../helpers/images.js';
import { useSandbox } from '../helpers/sandbox.js';
import { commandsRun } from '../helpers/commands.js';

const hasSkopeo = commandsRun(['skopeo', '--version']);

async function ociArchive(path: string, images: Array<{ image: BuiltImage; ref?: string }>): Promise<void> {
  const files: TarFile[] = [
    { name: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    {
      name: 'index.json',
      content: JSON.stringify({
        schemaVersion: 2,
        manifests: images.map(({ image, ref }) => ({
          mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.data.length,
          ...(ref ? { annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.split(':').pop() } } : {}),
        })),
      }),
    },
    { name: 'blobs/', type: 'directory' },
    { name: 'blobs/sha256/', type: 'directory' },
  ];
  const seen = new Set<string>();
  for (const { image } of images) {
    for (const b of [image.manifest, image.config, ...image.layers]) {
      if (seen.has(b.digest)) continue;
      seen.add(b.digest);
      files.push({ name: `blobs/sha256/${b.digest.slice(7)}`, content: b.data });
    }
  }
  writeFileSync(path, await makeTar(files));
}

/** `docker save` layout: manifest.json, <config hex>.json, <n>/layer.tar (uncompressed). */
async function dockerArchive(path: string, image: BuiltImage, tags: string[]): Promise<void> {
  const files: TarFile[] = [{ name: `${image.config.digest.slice(7)}.json`, content: image.config.data }];
  const layers: string[] = [];
  image.layers.forEach((l, i) => {
    files.push({ name: `${i}/`, type: 'directory' });
    files.push({ name: `${i}/layer.tar`, content: l.data });
    layers.push(`${i}/layer.tar`);
  });
  files.unshift({ name: 'manifest.json', content: JSON.stringify([{ Config: `${image.config.digest.slice(7)}.json`, RepoTags: tags, Layers: layers }]) });
  writeFileSync(path, await makeTar(files));
}

function twoLayerImage(compression: 'gzip' | 'none' = 'gzip'): Promise<BuiltImage> {
  return buildImage({
    compression,
    architecture: hostArch(),
    layers: [
      busyboxTarFiles(),
      [
        { name: 'etc/hello', content: 'hello from layer 2\n' },
        { name: 'etc/.wh.group' },
        { name: 'bin/sbit', content: 'x', mode: 0o4755 },
      ],
    ],
    config: { Cmd: ['cat', '/etc/hello'] },
  });
}

interface Stored {
  repos: Record<string, string>;
  images: string[];
  layers: string[];
  blobs: string[];
  tmp: string[];
}

function stored(root: string): Stored {
  const ls = (d: string): string[] => (existsSync(join(root, d)) ? readdirSync(join(root, d)).sort() : []);
  const reposFile = join(root, 'repositories.json');
  return {
    repos: existsSync(reposFile) ? (JSON.parse(readFileSync(reposFile, 'utf8')) as Record<string, string>) : {},
    images: ls('images'),
    layers: ls('layers'),
    blobs: ls('blobs/sha256'),
    tmp: ls('tmp'),
  };
}

function record(root: string, id: string): { id: string; manifestDigest: string; layers: string[]; repoTags: string[] } {
  return JSON.parse(readFileSync(join(root, 'images', `${id.slice(7)}.json`), 'utf8'));
}

describe('tsrun load', () => {
  const sb = useSandbox();

  it('loads an oci-archive: tags, verified blobs, unpacked layers with whiteouts', async () => {
    const img = await twoLayerImage();
    const file = join(sb.dir, 'img.oci.tar');
    await ociArchive(file, [{ image: img, ref: 'docker.io/d2e2e/two:1' }]);
    const r = await sb.tsrun(['load', '-i', file]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('Loaded image: d2e2e/two:1\n');
    const s = stored(sb.root);
    expect(s.repos).toEqual({ 'docker.io/d2e2e/two:1': img.config.digest });
    const rec = record(sb.root, img.config.digest);
    expect(rec.manifestDigest).toBe(img.manifest.digest);
    expect(rec.layers).toEqual(img.diffIds);
    for (const b of [img.manifest, img.config, ...img.layers]) expect(readFileSync(join(sb.root, 'blobs/sha256', b.digest.slice(7)))).toEqual(b.data);
    const top = join(sb.root, 'layers', img.diffIds[1]!.slice(7));
    expect(readFileSync(join(top, 'etc/hello'), 'utf8')).toBe('hello from layer 2\n');
    const wh = statSync(join(top, 'etc/group'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect(statSync(join(top, 'bin/sbit')).mode & 0o7777).toBe(0o4755);
    expect(s.tmp).toEqual([]);
  });

  it('loads a docker-archive, and runs the loaded image', async () => {
    const img = await twoLayerImage('none');
    const file = join(sb.dir, 'img.docker.tar');
    await dockerArchive(file, img, ['d2e2e/dock:latest', 'd2e2e/dock:v2']);
    const r = await sb.tsrun(['load', '-i', file]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('Loaded image: d2e2e/dock:latest\nLoaded image: d2e2e/dock:v2\n');
    expect(stored(sb.root).repos).toEqual({ 'docker.io/d2e2e/dock:latest': img.config.digest, 'docker.io/d2e2e/dock:v2': img.config.digest });
    expect(record(sb.root, img.config.digest).layers).toEqual(img.diffIds);
    const run = await sb.tsrun(['run', '--rm', '--pull', 'never', 'd2e2e/dock:v2']);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('hello from layer 2\n');
    expect(run.exitCode).toBe(0);
  });

  it.skipIf(!hasSkopeo)('loads docker-archive and oci-archive files written by skopeo', async () => {
    const img = await twoLayerImage();
    const ours = join(sb.dir, 'ours.tar');
    await ociArchive(ours, [{ image: img, ref: 'docker.io/d2e2e/sk:1' }]);
    const dock = join(sb.dir, 'skopeo.docker.tar');
    const oci = join(sb.dir, 'skopeo.oci.tar');
    execFileSync('skopeo', ['copy', '-q', `oci-archive:${ours}`, `docker-archive:${dock}:d2e2e/skd:2`]);
    execFileSync('skopeo', ['copy', '-q', `oci-archive:${ours}`, `oci-archive:${oci}:d2e2e/sko:3`]);
    const a = await sb.tsrun(['load', '-i', dock]);
    expect(a.stderr).toBe('');
    expect(a.stdout).toBe('Loaded image: d2e2e/skd:2\n');
    const b = await sb.tsrun(['load', '-q', '-i', oci]);
    expect(b.stderr).toBe('');
    // The same config either way: the image id survives both formats.
    expect(b.stdout).toBe(`${img.config.digest}\n`);
    expect(stored(sb.root).repos).toEqual({ 'docker.io/d2e2e/skd:2': img.config.digest, 'docker.io/d2e2e/sko:3': img.config.digest });
  });

  it('loads a gzip-compressed archive from stdin', async () => {
    const img = await twoLayerImage();
    const file = join(sb.dir, 'img.tar');
    await ociArchive(file, [{ image: img, ref: 'd2e2e/stdin:1' }]);
    writeFileSync(file + '.gz', gzipSync(readFileSync(file)));
    const r = await sb.tsrun(['load'], { wrapper: ['sh', '-c', 'exec "$@" < "$0"', file + '.gz'] });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('Loaded image: d2e2e/stdin:1\n');
    expect(stored(sb.root).tmp).toEqual([]);
  });
});

describe('tsrun save', () => {
  const sb = useSandbox();

  it('round-trips through save and load with equal digests', async () => {
    const img = await twoLayerImage();
    const file = join(sb.dir, 'in.tar');
    await ociArchive(file, [{ image: img, ref: 'd2e2e/round:1' }]);
    expect((await sb.tsrun(['load', '-i', file])).exitCode).toBe(0);
    const out = join(sb.dir, 'saved.tar');
    const s = await sb.tsrun(['save', '-o', out, 'd2e2e/round:1']);
    expect(s.stderr).toBe('');
    expect(s.exitCode).toBe(0);
    const names = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
    expect(names).toEqual(['blobs/', 'blobs/sha256/', 'index.json', 'oci-layout', ...[img.manifest, img.config, ...img.layers].map((b) => `blobs/sha256/${b.digest.slice(7)}`)].sort());
    const index = JSON.parse(execFileSync('tar', ['-xOf', out, 'index.json'], { encoding: 'utf8' }));
    expect(index.manifests).toEqual([{
      mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.manifest.digest, size: img.manifest.data.length,
      annotations: { 'io.containerd.image.name': 'docker.io/d2e2e/round:1', 'org.opencontainers.image.ref.name': '1' },
    }]);
    // Saving again gives the same bytes: fixed times and owners.
    const out2 = join(sb.dir, 'saved2.tar');
    expect((await sb.tsrun(['save', '-o', out2, 'd2e2e/round:1'])).exitCode).toBe(0);
    expect(sha256(readFileSync(out2))).toBe(sha256(readFileSync(out)));

    const root2 = join(sb.dir, 'state2');
    const l = await sb.tsrun(['load', '-i', out], { env: { TSRUN_ROOT: root2 } });
    expect(l.stderr).toBe('');
    expect(l.stdout).toBe('Loaded image: d2e2e/round:1\n');
    const a = record(sb.root, img.config.digest);
    const b = record(root2, img.config.digest);
    expect(b.manifestDigest).toBe(a.manifestDigest);
    expect(b.layers).toEqual(a.layers);
    expect(stored(root2).blobs).toEqual(stored(sb.root).blobs);
    expect(stored(root2).layers).toEqual(stored(sb.root).layers);
    if (hasSkopeo) {
      const info = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${out}`], { encoding: 'utf8' }));
      expect(info.Digest).toBe(img.manifest.digest);
    }
  });

  it('fails clearly for an unknown image and writes no file', async () => {
    const out = join(sb.dir, 'none.tar');
    const r = await sb.tsrun(['save', '-o', out, 'd2e2e/nope:1']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/no such image: d2e2e\/nope:1/);
    expect(readdirSync(sb.dir).filter((n) => n.startsWith('none'))).toEqual([]);
  });
});

describe('tsrun import', () => {
  const sb = useSandbox();

  it('makes a one-layer image from a rootfs tarball (plain and gzip) that runs', async () => {
    const tar = await makeTar([...busyboxTarFiles(), { name: 'etc/imported', content: 'yes\n' }]);
    const file = join(sb.dir, 'rootfs.tar');
    writeFileSync(file, tar);
    const r = await sb.tsrun(['import', file, 'd2e2e/imp:1']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^sha256:[a-f0-9]{64}$/);
    const rec = record(sb.root, id);
    expect(rec.layers).toEqual([sha256(tar)]);
    expect(rec.repoTags).toEqual(['docker.io/d2e2e/imp:1']);
    expect(readFileSync(join(sb.root, 'layers', sha256(tar).slice(7), 'etc/imported'), 'utf8')).toBe('yes\n');
    const run = await sb.tsrun(['run', '--rm', '--pull', 'never', 'd2e2e/imp:1', 'cat', '/etc/imported']);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('yes\n');

    writeFileSync(file + '.gz', gzipSync(tar));
    const g = await sb.tsrun(['import', file + '.gz', 'd2e2e/imp:gz']);
    expect(g.exitCode).toBe(0);
    const grec = record(sb.root, g.stdout.trim());
    // Same tar inside: the same diff ID, so the layer is shared, not stored twice.
    expect(grec.layers).toEqual([sha256(tar)]);
    expect(stored(sb.root).layers).toEqual([sha256(tar).slice(7)]);
    // ...and the saved archive of the imported image loads elsewhere.
    const out = join(sb.dir, 'imp.tar');
    expect((await sb.tsrun(['save', '-o', out, 'd2e2e/imp:gz'])).exitCode).toBe(0);
    const l = await sb.tsrun(['load', '-i', out], { env: { TSRUN_ROOT: join(sb.dir, 'state2') } });
    expect(l.stdout).toBe('Loaded image: d2e2e/imp:gz\n');
  });
});
