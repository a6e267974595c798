// Archive reading and writing against a real ImageStore in a temp dir.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TarIndex, importRootfs, loadArchive, saveArchive } from '../../src/image/archive.js';
import { ImageStore } from '../../src/image/store.js';
import { sha256 as sha } from '../helpers/images.js';
import { tarOf } from '../helpers/tar.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsrun-archive-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('TarIndex', () => {
  it('finds members by name, through long names, ./ prefixes, symlinks and hardlinks', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`;
    const file = join(dir, 'a.tar');
    writeFileSync(file, await tarOf([
      { h: { name: './manifest.json' }, body: '[]' },
      { h: { name: long }, body: 'long' },
      { h: { name: 'abc.tar' }, body: 'layer' },
      { h: { name: 'x/', type: 'directory' } },
      { h: { name: 'x/layer.tar', type: 'symlink', linkname: '../abc.tar' } },
      { h: { name: 'y/layer.tar', type: 'link', linkname: 'abc.tar' } },
      { h: { name: 'loop', type: 'symlink', linkname: 'loop' } },
    ]));
    const idx = TarIndex.open(file);
    expect(idx.read('manifest.json', 'm').toString()).toBe('[]');
    expect(idx.read(long, 'long').toString()).toBe('long');
    expect(idx.read('x/layer.tar', 'l').toString()).toBe('layer');
    expect(idx.read('./y/layer.tar', 'l').toString()).toBe('layer');
    expect(idx.find('loop')).toBeUndefined();
    // A name from hostile metadata is only a key: it can never reach a host file.
    expect(() => idx.read('../../../etc/passwd', 'image config')).toThrow(/archive has no image config/);
  });

  it('refuses a truncated archive and a non-tar file', async () => {
    const file = join(dir, 'a.tar');
    const tar = await tarOf([{ h: { name: 'big' }, body: Buffer.alloc(10_000, 1) }]);
    writeFileSync(file, tar.subarray(0, 4096));
    expect(() => TarIndex.open(file)).toThrow(/truncated/);
    writeFileSync(file, Buffer.alloc(2048, 0x41));
    expect(() => TarIndex.open(file)).toThrow(/not a tar archive/);
  });
});

describe('import, save and load', () => {
  it('round-trips an imported image with equal digests, and saves reproducibly', async () => {
    const rootfs = await tarOf([{ h: { name: 'etc/', type: 'directory' } }, { h: { name: 'etc/os-release' }, body: 'ID=test\n' }]);
    writeFileSync(join(dir, 'rootfs.tar'), rootfs);
    const a = new ImageStore(join(dir, 'a'));
    const rec = await importRootfs(a, join(dir, 'rootfs.tar'), 'example.com/t/img:1');
    expect(rec.layers).toEqual([sha(rootfs)]);
    expect(readFileSync(join(a.layerPath(sha(rootfs)), 'etc/os-release'), 'utf8')).toBe('ID=test\n');

    await saveArchive(a, ['example.com/t/img:1'], join(dir, 'out.tar'));
    await saveArchive(a, [rec.id], join(dir, 'out2.tar'));
    expect(sha(readFileSync(join(dir, 'out2.tar')))).toBe(sha(readFileSync(join(dir, 'out.tar'))));
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);

    const b = new ImageStore(join(dir, 'b'));
    const loaded = await loadArchive(b, join(dir, 'out.tar'));
    expect(loaded).toEqual([{ id: rec.id, repoTags: ['example.com/t/img:1'] }]);
    const got = b.getImage('example.com/t/img:1')!;
    expect(got.id).toBe(rec.id);
    expect(got.manifestDigest).toBe(rec.manifestDigest);
    expect(got.layers).toEqual(rec.layers);
    expect(readdirSync(b.blobsDir).sort()).toEqual(readdirSync(a.blobsDir).sort());
    expect(readdirSync(b.tmpDir)).toEqual([]);
  });

  it('a docker-archive whose layer is hostile stores nothing', async () => {
    const layer = await tarOf([{ h: { name: '../escape' }, body: 'x' }]);
    const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
    writeFileSync(join(dir, 'd.tar'), await tarOf([
      { h: { name: 'manifest.json' }, body: JSON.stringify([{ Config: 'c.json', RepoTags: ['evil:1'], Layers: ['l/layer.tar'] }]) },
      { h: { name: 'c.json' }, body: config },
      { h: { name: 'l/layer.tar' }, body: layer },
    ]));
    const s = new ImageStore(join(dir, 's'));
    await expect(loadArchive(s, join(dir, 'd.tar'))).rejects.toThrow(/refusing layer entry "\.\.\/escape"/);
    expect(s.listImages()).toEqual([]);
    expect(readdirSync(s.layersDir)).toEqual([]);
    expect(readdirSync(s.blobsDir)).toEqual([]);
    expect(readdirSync(s.tmpDir)).toEqual([]);
    expect(existsSync(join(dir, 's', 'escape'))).toBe(false);
    expect(existsSync(join(dir, 's', 'tmp', 'escape'))).toBe(false);
  });
});
