// Hostile and corrupt layers through the real CLI (`tsrun load`, `tsrun import`): each
// must fail with a clear error, store nothing (no image, layer, blob or tag, no debris in
// P/tmp) and write nothing outside the layer's directory. The escapes aim at a directory
// of the test's own sandbox, so a regression damages nothing but the test.
import { readFileSync, readdirSync, existsSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type BuiltImage, type TarFile, buildImage, busyboxTarFiles, hostArch, makeTar, sha256 } from '../helpers/images.js';
import { useSandbox } from '../helpers/sandbox.js';
import type { TsrunResult } from '../helpers/tsrun.js';

async function ociArchive(path: string, image: BuiltImage, ref: string): Promise<void> {
  const blobs = [image.manifest, image.config, ...image.layers];
  writeFileSync(path, await makeTar([
    { name: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.data.length, annotations: { 'io.containerd.image.name': ref } }] }) },
    ...blobs.map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, content: b.data })),
  ]));
}

describe('hostile layers', () => {
  const sb = useSandbox();

  /**
   * Layers are unpacked in P/tmp/<name>/ with P = sb.dir/state, so "../../../outside"
   * from there is sb.dir/outside: the escapes all aim at that one directory.
   */
  const outside = (): string => join(sb.dir, 'outside');
  const cases: Array<[string, () => TarFile[]]> = [
    ['../ traversal', () => [{ name: '../../../outside/pwned', content: 'x' }]],
    ['an absolute path', () => [{ name: `${outside()}/pwned`, content: 'x' }]],
    ['a write through an absolute symlink', () => [{ name: 'esc', type: 'symlink', linkname: outside() }, { name: 'esc/pwned', content: 'x' }]],
    ['a write through a relative symlink that climbs out', () => [{ name: 'esc', type: 'symlink', linkname: '../../../outside' }, { name: 'esc/pwned', content: 'x' }]],
    ['a hardlink to a file outside', () => [{ name: 'stolen', type: 'link', linkname: '../../../outside/secret' }]],
    ['a hardlink through an escaping symlink', () => [{ name: 'esc', type: 'symlink', linkname: outside() }, { name: 'stolen', type: 'link', linkname: 'esc/secret' }]],
    ['an entry that replaces the layer root', () => [{ name: './', type: 'symlink', linkname: outside() }]],
  ];

  function prepareOutside(): void {
    mkdirSync(outside(), { recursive: true });
    writeFileSync(join(outside(), 'secret'), 'top secret');
  }

  function expectRefusedAndClean(r: TsrunResult): void {
    expect(r.exitCode, r.stderr).toBe(125);
    expect(r.stderr).toMatch(/^tsrun: refusing layer entry "[^"]+": /m);
    expect(r.stderr).toMatch(/^hint: /m);
    expectNothingStored();
  }

  function expectNothingStored(): void {
    const ls = (d: string): string[] => (existsSync(join(sb.root, d)) ? readdirSync(join(sb.root, d)) : []);
    expect(ls('images'), 'image records').toEqual([]);
    expect(ls('layers'), 'layers').toEqual([]);
    expect(ls('blobs/sha256'), 'blobs').toEqual([]);
    expect(ls('tmp'), 'staging debris').toEqual([]);
    const repos = join(sb.root, 'repositories.json');
    if (existsSync(repos)) expect(JSON.parse(readFileSync(repos, 'utf8'))).toEqual({});
    expect(readdirSync(outside())).toEqual(['secret']);
    expect(readFileSync(join(outside(), 'secret'), 'utf8')).toBe('top secret');
    expect(statSync(join(outside(), 'secret')).nlink).toBe(1);
  }

  for (const [what, files] of cases) {
    it(`load refuses ${what}`, async () => {
      prepareOutside();
      // A good bottom layer first: the layer this load already unpacked must be taken back.
      const img = await buildImage({ architecture: hostArch(), layers: [busyboxTarFiles(), files()] });
      const file = join(sb.dir, 'evil.tar');
      await ociArchive(file, img, 'd2e2e/evil:1');
      expectRefusedAndClean(await sb.tsrun(['load', '-i', file]));
    });

    it(`import refuses ${what}`, async () => {
      prepareOutside();
      const file = join(sb.dir, 'evil-rootfs.tar');
      writeFileSync(file, await makeTar(files()));
      expectRefusedAndClean(await sb.tsrun(['import', file, 'd2e2e/evil:2']));
    });
  }

  it('load refuses a layer blob that does not match its digest', async () => {
    prepareOutside();
    const img = await buildImage({ architecture: hostArch(), layers: [[{ name: 'a', content: 'a' }]] });
    const tampered = await makeTar([{ name: 'a', content: 'b' }]);
    img.layers[0] = { ...img.layers[0]!, data: tampered };
    const file = join(sb.dir, 'bad.tar');
    await ociArchive(file, img, 'd2e2e/bad:1');
    const r = await sb.tsrun(['load', '-i', file]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/digest mismatch|diff ID/);
    expectNothingStored();
  });

  it('load refuses a layer whose diff ID is not the config\'s', async () => {
    prepareOutside();
    const img = await buildImage({ architecture: hostArch(), layers: [[{ name: 'a', content: 'a' }]] });
    // A config naming another diff ID, with a manifest that matches that config.
    const cfg = JSON.parse(img.config.data.toString());
    cfg.rootfs.diff_ids = [sha256(Buffer.from('something else'))];
    const cdata = Buffer.from(JSON.stringify(cfg));
    const m = JSON.parse(img.manifest.data.toString());
    m.config = { ...m.config, digest: sha256(cdata), size: cdata.length };
    const mdata = Buffer.from(JSON.stringify(m));
    const bad: BuiltImage = { ...img, config: { ...img.config, data: cdata, digest: sha256(cdata) }, manifest: { ...img.manifest, data: mdata, digest: sha256(mdata) } };
    const file = join(sb.dir, 'bad.tar');
    await ociArchive(file, bad, 'd2e2e/bad:2');
    const r = await sb.tsrun(['load', '-i', file]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/unpacks to diff ID .* but the image config says/);
    expectNothingStored();
  });

  it('load refuses a truncated archive and a file that is not an archive', async () => {
    prepareOutside();
    const img = await buildImage({ architecture: hostArch(), layers: [[{ name: 'a', content: 'a'.repeat(5000) }]] });
    const file = join(sb.dir, 'trunc.tar');
    await ociArchive(file, img, 'd2e2e/t:1');
    writeFileSync(file, readFileSync(file).subarray(0, 3000));
    const r = await sb.tsrun(['load', '-i', file]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/truncated|no blob|no index|no oci-layout|neither/);
    writeFileSync(file, 'this is not a tar file at all'.repeat(40));
    const r2 = await sb.tsrun(['load', '-i', file]);
    expect(r2.exitCode).toBe(125);
    expect(r2.stderr).toMatch(/not a tar archive/);
    expectNothingStored();
  });
});
