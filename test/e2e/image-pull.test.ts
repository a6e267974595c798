// Pull from a real registry (Debian's docker-registry on 127.0.0.1), store, list,
// tag, remove. Images are built at test time from busybox-static.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { type BuiltImage, buildImage, buildIndex, busyboxTarFiles, hostArch } from '../helpers/images.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';

const HOSTILE_TARGET = `/tmp/tsrun-e2e-hostile-pull-${process.pid}`;
let reg: TestRegistry;
let bb: BuiltImage;
let multi: BuiltImage;
let arm: BuiltImage;
let hostile: BuiltImage;

beforeAll(async () => {
  reg = await startRegistry();
  bb = await buildImage({ layers: [busyboxTarFiles()] });
  multi = await buildImage({
    layers: [busyboxTarFiles(), [{ name: 'data/', type: 'directory' }, { name: 'data/one', content: 'one\n' }], [{ name: 'data/two', content: 'two\n' }]],
    config: { Cmd: ['cat', '/data/one', '/data/two'] },
  });
  arm = await buildImage({ layers: [busyboxTarFiles(), [{ name: 'arch', content: 'arm64\n' }]], architecture: 'arm64' });
  const native = await buildImage({ layers: [busyboxTarFiles(), [{ name: 'arch', content: 'native\n' }]], architecture: hostArch() });
  await reg.push('test/busybox', '1', bb);
  await reg.push('test/multi', 'latest', multi);
  // Two layers that each try to write to /tmp/tsrun-hostile-pull/outside: on two or more
  // cores one of them is unpacked on an unpack thread, the other on the main thread.
  mkdirSync(HOSTILE_TARGET, { recursive: true });
  hostile = await buildImage({
    layers: [
      [{ name: 'esc', type: 'symlink', linkname: HOSTILE_TARGET }, { name: 'esc/pwned', content: 'x' }],
      [{ name: '../../../../../../../..' + HOSTILE_TARGET + '/pwned2', content: 'x' }],
    ],
  });
  await reg.push('test/hostile', 'latest', hostile);
  const dArm = await buildImage({ layers: [busyboxTarFiles(), [{ name: 'arch', content: 'docker arm\n' }]], architecture: 'arm', variant: 'v7', docker: true });
  const dNative = await buildImage({ layers: [busyboxTarFiles(), [{ name: 'arch', content: 'docker native\n' }]], architecture: hostArch(), docker: true });
  await reg.pushIndex('test/dockerlist', 'latest', buildIndex([{ image: dArm, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }, { image: dNative, platform: { os: 'linux', architecture: hostArch() } }], true), [dArm, dNative]);
  const formats = await buildImage({
    layers: [busyboxTarFiles(), [{ name: 'z', content: 'zstd layer\n' }], [{ name: 'p', content: 'plain layer\n' }]],
    compression: ['gzip', 'zstd', 'none'],
  });
  await reg.push('test/formats', 'latest', formats);
  await reg.pushIndex('test/index', 'latest', buildIndex([{ image: arm, platform: { os: 'linux', architecture: 'arm64' } }, { image: native, platform: { os: 'linux', architecture: hostArch() } }]), [arm, native]);
});

afterAll(async () => {
  await reg?.stop();
  rmSync(HOSTILE_TARGET, { recursive: true, force: true });
});

describe('tsrun pull', () => {
  const sb = useSandbox();

  it('pulls a single-layer image, stores its blobs and layer, and lists it', async () => {
    const ref = `${reg.host}/test/busybox:1`;
    const r = await sb.tsrun(['pull', ref]);
    expectExit(r, 0);
    expect(r.stdout).toContain(`Digest: ${bb.manifest.digest}`);
    for (const b of [bb.manifest, bb.config, ...bb.layers]) expect(existsSync(join(sb.root, 'blobs/sha256', b.digest.slice(7)))).toBe(true);
    expect(existsSync(join(sb.root, 'layers', bb.diffIds[0]!.slice(7), 'bin/busybox'))).toBe(true);
    expect(readdirSync(join(sb.root, 'tmp'))).toEqual([]);
    const ls = await sb.tsrun(['images', '--format', 'json']);
    expectExit(ls, 0);
    const rows = ls.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    expect(rows).toEqual([expect.objectContaining({ Repository: `${reg.host}/test/busybox`, Tag: '1', ID: bb.config.digest.slice(7, 19) })]);
    const table = await sb.tsrun(['images']);
    expect(table.stdout.split('\n')[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
  });

  it('a second pull is up to date; images REPO[:TAG] filters', async () => {
    const ref = `${reg.host}/test/busybox:1`;
    expectExit(await sb.tsrun(['pull', '-q', ref]), 0);
    expectExit(await sb.tsrun(['pull', '-q', `${reg.host}/test/multi`]), 0);
    const again = await sb.tsrun(['pull', ref]);
    expectExit(again, 0);
    expect(again.stdout).toContain(`Status: Image is up to date for ${ref}`);
    expect(again.stdout).not.toMatch(/Pulling fs layer|Downloading/);
    const only = await sb.tsrun(['images', '--format', 'json', `${reg.host}/test/multi`]);
    expect(only.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { Repository: string }).Repository)).toEqual([`${reg.host}/test/multi`]);
    const none = await sb.tsrun(['images', '-q', `${reg.host}/test/multi:nope`]);
    expect(none.stdout).toBe('');
  });

  it('-q prints only the digest', async () => {
    const r = await sb.tsrun(['pull', '-q', `${reg.host}/test/busybox:1`]);
    expectExit(r, 0);
    expect(r.stdout).toBe(`${bb.manifest.digest}\n`);
  });

  it('runs a pulled image with files from every layer', async () => {
    const r = await sb.tsrun(['run', '--rm', `${reg.host}/test/multi`]);
    expectExit(r, 0);
    expect(r.stdout).toBe('one\ntwo\n');
    expect(readdirSync(join(sb.root, 'containers'))).toEqual([]);
  });

  it('pulls Docker schema2 manifest lists and manifests', async () => {
    const r = await sb.tsrun(['run', '--rm', `${reg.host}/test/dockerlist`, 'cat', '/arch']);
    expectExit(r, 0);
    expect(r.stdout).toBe('docker native\n');
    const p = await sb.tsrun(['pull', '--platform', 'linux/arm/v6', `${reg.host}/test/dockerlist`]);
    expect(p.exitCode).toBe(125);
    expect(p.stderr).toMatch(/no image for platform linux\/arm\/v6/);
    expect(p.stderr).toMatch(/linux\/arm\/v7/);
  });

  it.skipIf(availableParallelism() < 2)('unpacks the layers of a multi-layer pull on two threads, with the same result', async () => {
    const r = await sb.tsrun(['--trace=json', 'pull', '-q', `${reg.host}/test/multi`]);
    expectExit(r, 0);
    const threads = new Set(r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { thread: string }).thread));
    expect([...threads].sort()).toEqual(['main', 'unpack']);
    const run = await sb.tsrun(['run', '--rm', `${reg.host}/test/multi`]);
    expectExit(run, 0);
    expect(run.stdout).toBe('one\ntwo\n');
  });

  it('refuses hostile layers from a registry on either thread; nothing is stored or written outside', async () => {
    const r = await sb.tsrun(['pull', `${reg.host}/test/hostile`]);
    expect(r.exitCode, r.stderr).toBe(125);
    expect(r.stderr).toMatch(/^tsrun: refusing layer entry "[^"]+": /m);
    expect(readdirSync(HOSTILE_TARGET)).toEqual([]);
    for (const d of ['images', 'layers', 'tmp']) expect(existsSync(join(sb.root, d)) ? readdirSync(join(sb.root, d)) : [], d).toEqual([]);
  });

  it('pulls gzip, zstd and uncompressed layers', async () => {
    const r = await sb.tsrun(['run', '--rm', `${reg.host}/test/formats`, 'cat', '/z', '/p']);
    expectExit(r, 0);
    expect(r.stdout).toBe('zstd layer\nplain layer\n');
  });

  it('chooses the host platform from an index, and --platform overrides it', async () => {
    const r = await sb.tsrun(['run', '--rm', `${reg.host}/test/index`, 'cat', '/arch']);
    expectExit(r, 0);
    expect(r.stdout).toBe('native\n');
    const p = await sb.tsrun(['pull', '--platform', 'linux/arm64', `${reg.host}/test/index`]);
    expectExit(p, 0);
    const insp = await sb.tsrun(['image', 'inspect', `${reg.host}/test/index`]);
    const [rec] = JSON.parse(insp.stdout) as { Id: string; Architecture: string }[];
    expect(rec!.Id).toBe(arm.config.digest);
    expect(rec!.Architecture).toBe('arm64');
  });
});
