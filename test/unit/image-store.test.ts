import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImageStore, type ImageRecord } from '../../src/image/store.js';
import { TsrunError } from '../../src/errors.js';

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let root: string;
let store: ImageStore;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tsrun-store-'));
  store = new ImageStore(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function record(id: string, layers: string[], tags: string[] = []): ImageRecord {
  return {
    id, manifestDigest: sha(`m-${id}`), repoTags: tags, repoDigests: [], layers, config: { rootfs: { type: 'layers', diff_ids: layers } },
    created: new Date().toISOString(), size: 1, platform: { os: 'linux', architecture: 'amd64' },
  };
}

describe('ImageStore blobs', () => {
  it('stores a blob under its digest, from a buffer or a stream', async () => {
    const data = Buffer.from('hello blob');
    const r = await store.putBlob(data, sha(data));
    expect(r).toEqual({ digest: sha(data), size: data.length });
    expect(readFileSync(store.blobPath(r.digest), 'utf8')).toBe('hello blob');
    const r2 = await store.putBlob(Readable.from([Buffer.from('a'), Buffer.from('b')]));
    expect(r2.digest).toBe(sha('ab'));
    expect(store.hasBlob(sha('ab'))).toBe(true);
    expect(readdirSync(store.tmpDir)).toEqual([]);
  });

  it('stores nothing when the digest does not match', async () => {
    const wrong = sha('something else');
    await expect(store.putBlob(Buffer.from('payload'), wrong)).rejects.toThrow(/digest mismatch: expected sha256:[0-9a-f]{64}, got/);
    expect(store.hasBlob(wrong)).toBe(false);
    expect(store.hasBlob(sha('payload'))).toBe(false);
    expect(readdirSync(store.tmpDir)).toEqual([]);
  });

  it('stores nothing when the size does not match (a truncated download)', async () => {
    const data = Buffer.from('short');
    await expect(store.putBlob(data, sha(data), 100)).rejects.toThrow(/got 5 bytes, expected 100/);
    expect(store.hasBlob(sha(data))).toBe(false);
  });

  it('stores nothing when the source stream fails midway', async () => {
    const src = new Readable({ read() {} });
    src.push(Buffer.from('partial'));
    setTimeout(() => src.destroy(new Error('connection reset')), 5);
    await expect(store.putBlob(src)).rejects.toThrow(/connection reset/);
    expect(readdirSync(store.blobsDir)).toEqual([]);
    expect(readdirSync(store.tmpDir)).toEqual([]);
  });

  it('refuses a malformed digest', async () => {
    await expect(store.putBlob(Buffer.from('x'), 'sha256:xyz')).rejects.toBeInstanceOf(TsrunError);
    expect(() => store.blobPath('../../etc/passwd')).toThrow(/invalid digest/);
  });
});

describe('ImageStore layers', () => {
  const diff = sha('layer');

  it('makes a layer visible only once it is complete', async () => {
    let seenDuring = true;
    const p = await store.addLayer(diff, async (dir) => {
      writeFileSync(join(dir, 'f'), 'x');
      seenDuring = store.hasLayer(diff);
    });
    expect(seenDuring).toBe(false);
    expect(p).toBe(store.layerPath(diff));
    expect(readFileSync(join(p, 'f'), 'utf8')).toBe('x');
  });

  it('a failed unpack leaves neither the layer nor its temp dir', async () => {
    await expect(store.addLayer(diff, async (dir) => {
      writeFileSync(join(dir, 'half'), 'x');
      throw new Error('hostile tar');
    })).rejects.toThrow('hostile tar');
    expect(store.hasLayer(diff)).toBe(false);
    expect(readdirSync(store.tmpDir)).toEqual([]);
  });

  it('concurrent adds of the same layer: both succeed, one copy is kept, no debris', async () => {
    let calls = 0;
    const unpack = async (dir: string): Promise<void> => {
      calls++;
      mkdirSync(join(dir, 'd'));
      await new Promise((r) => setTimeout(r, 20));
      writeFileSync(join(dir, 'd/f'), `copy ${calls}`);
    };
    const [a, b, c] = await Promise.all([store.addLayer(diff, unpack), store.addLayer(diff, unpack), store.addLayer(diff, unpack)]);
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(calls).toBe(3);
    expect(readdirSync(store.layersDir)).toEqual([diff.slice(7)]);
    expect(readFileSync(join(a, 'd/f'), 'utf8')).toMatch(/^copy \d$/);
    expect(readdirSync(store.tmpDir)).toEqual([]);
    // and a later add does not unpack again
    await store.addLayer(diff, async () => {
      throw new Error('should not be called');
    });
  });
});

describe('ImageStore images', () => {
  const l1 = sha('l1');
  const l2 = sha('l2');
  const l3 = sha('l3');
  const idA = sha('config A');
  const idB = sha('config B');

  beforeEach(async () => {
    for (const l of [l1, l2, l3]) await store.addLayer(l, async (d) => writeFileSync(join(d, 'x'), l));
  });

  it('records images and resolves them by reference, full id and short id', async () => {
    await store.putImage(record(idA, [l1, l2], ['busybox']));
    expect(store.readRepositories()).toEqual({ 'docker.io/library/busybox:latest': idA });
    expect(store.getImage('busybox')?.id).toBe(idA);
    expect(store.getImage('docker.io/library/busybox:latest')?.id).toBe(idA);
    expect(store.getImage(idA)?.id).toBe(idA);
    expect(store.getImage(idA.slice(7, 19))?.id).toBe(idA);
    expect(store.getImage('nothere')).toBeNull();
    expect(store.listImages().map((i) => i.id)).toEqual([idA]);
  });

  it('tag moves a name from one image to another; untag removes it', async () => {
    await store.putImage(record(idA, [l1], ['app:1']));
    await store.putImage(record(idB, [l1], []));
    await store.tag('app:1', idB);
    expect(store.resolveRef('app:1')).toBe(idB);
    expect(store.readImage(idA)!.repoTags).toEqual([]);
    expect(store.readImage(idB)!.repoTags).toEqual(['docker.io/library/app:1']);
    expect(await store.untag('app:1')).toBe(idB);
    expect(store.resolveRef('app:1')).toBeUndefined();
  });

  it('concurrent putImage calls keep every tag (repositories.json is written under a lock)', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.putImage(record(sha(`c${i}`), [l1], [`img${i}`]))));
    expect(Object.keys(store.readRepositories())).toHaveLength(20);
    expect(existsSync(join(root, 'repositories.lock'))).toBe(false);
  });

  it('putImage with requireLayers refuses a record whose layer vanished (an rmi raced the pull)', async () => {
    const gone = sha('never unpacked');
    await expect(store.putImage(record(idA, [l1, gone], ['a']), { requireLayers: true })).rejects.toThrow(/layers vanished.*sha256:/);
    expect(store.getImage('a')).toBeNull();
    expect(store.readRepositories()).toEqual({});
    await store.putImage(record(idA, [l1], ['a']), { requireLayers: true });
    expect(store.getImage('a')?.id).toBe(idA);
  });

  it('removeImage never deletes a layer another image shares, and refuses an image in use', async () => {
    await store.putImage(record(idA, [l1, l2], ['a']));
    await store.putImage(record(idB, [l1, l3], ['b']));
    mkdirSync(join(root, 'containers/c1'), { recursive: true });
    writeFileSync(join(root, 'containers/c1/image.json'), JSON.stringify({ image: idA }));
    await expect(store.removeImage(idA)).rejects.toThrow(/in use by container c1/);
    expect(store.getImage('a')).not.toBeNull();
    const r = await store.removeImage(idA, { force: true });
    expect(r.untagged).toEqual(['docker.io/library/a:latest']);
    expect(r.deleted).toEqual([idA, l2]);
    expect(store.hasLayer(l1)).toBe(true);
    expect(store.hasLayer(l2)).toBe(false);
    expect(store.hasLayer(l3)).toBe(true);
    expect(store.getImage('a')).toBeNull();
    expect(store.getImage('b')?.id).toBe(idB);
  });
});
