// What goes wrong on the wire: tampered and truncated blobs, flaky registries,
// authentication (TLS registry with a test CA and htpasswd), concurrent pulls, and the
// store verbs (tag, rmi, prune) around shared layers.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { type BuiltImage, buildImage, busyboxTarFiles } from '../helpers/images.js';
import { type FaultyProxy, type TestRegistry, type TokenProxy, startFaultyProxy, startRegistry, startTokenProxy } from '../helpers/registry.js';

let reg: TestRegistry;
let secure: TestRegistry;
let proxy: FaultyProxy;
let tokenAuth: TokenProxy;
let tokenAnon: TokenProxy;
let img: BuiltImage;
let sibling: BuiltImage;

beforeAll(async () => {
  [reg, secure] = await Promise.all([startRegistry(), startRegistry({ tls: true, auth: { user: 'tester', password: 's3cret' } })]);
  proxy = await startFaultyProxy(reg.host);
  tokenAuth = await startTokenProxy(reg.host, { user: 'bob', password: 'pw' });
  tokenAnon = await startTokenProxy(reg.host, { anonymous: true });
  img = await buildImage({ layers: [busyboxTarFiles(), [{ name: 'top', content: 'top\n' }]] });
  // shares the busybox layer with img
  sibling = await buildImage({ layers: [busyboxTarFiles(), [{ name: 'other', content: 'other\n' }]] });
  await reg.push('test/img', 'latest', img);
  await reg.push('test/sibling', 'latest', sibling);
  await secure.push('private/img', 'latest', img);
});

afterAll(async () => {
  await proxy?.stop();
  await tokenAuth?.stop();
  await tokenAnon?.stop();
  await Promise.all([reg?.stop(), secure?.stop()]);
});

function storedBlobs(root: string): string[] {
  return existsSync(join(root, 'blobs/sha256')) ? readdirSync(join(root, 'blobs/sha256')) : [];
}
function storedLayers(root: string): string[] {
  return existsSync(join(root, 'layers')) ? readdirSync(join(root, 'layers')) : [];
}

describe('pull faults', () => {
  const sb = useSandbox();

  it('a blob that does not match its digest: clear error, nothing stored', async () => {
    proxy.clear();
    proxy.fault(img.layers[1]!.digest, 'corrupt');
    const r = await sb.tsrun(['pull', `${proxy.host}/test/img`]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/digest mismatch: expected sha256:[0-9a-f]{64}, got sha256:/);
    expect(storedBlobs(sb.root)).not.toContain(img.layers[1]!.digest.slice(7));
    expect(storedLayers(sb.root)).not.toContain(img.diffIds[1]!.slice(7));
    expect(existsSync(join(sb.root, 'repositories.json'))).toBe(false);
    expect(readdirSync(join(sb.root, 'tmp'))).toEqual([]);
  });

  it('a manifest that does not match the digest asked for: clear error', async () => {
    proxy.clear();
    proxy.fault(`/manifests/${img.manifest.digest}`, 'corrupt');
    const r = await sb.tsrun(['pull', `${proxy.host}/test/img@${img.manifest.digest}`]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/manifest sha256:[0-9a-f]+: digest mismatch/);
    expect(storedBlobs(sb.root)).toEqual([]);
  });

  it('a truncated blob: retried, then a clear error, nothing stored', async () => {
    proxy.clear();
    proxy.fault(img.layers[0]!.digest, 'truncate');
    const r = await sb.tsrun(['pull', `${proxy.host}/test/img`]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/layer sha256:[0-9a-f]{12}.*(aborted|ECONNRESET|socket hang up|truncated|bytes, expected)/);
    expect(proxy.hits.get(`/v2/test/img/blobs/${img.layers[0]!.digest}`)).toBeGreaterThan(1);
    expect(storedLayers(sb.root)).not.toContain(img.diffIds[0]!.slice(7));
    expect(storedBlobs(sb.root)).not.toContain(img.layers[0]!.digest.slice(7));
    expect(readdirSync(join(sb.root, 'tmp'))).toEqual([]);
  });

  it('retries 5xx answers and then succeeds', async () => {
    proxy.clear();
    proxy.fault(img.layers[0]!.digest, 'error500', 2);
    proxy.fault('/manifests/latest', 'error500', 1);
    const r = await sb.tsrun(['pull', `${proxy.host}/test/img`]);
    expectExit(r, 0);
    expect(proxy.hits.get(`/v2/test/img/blobs/${img.layers[0]!.digest}`)).toBe(3);
    expect(storedLayers(sb.root)).toContain(img.diffIds[0]!.slice(7));
  });

  it('two concurrent pulls of the same image both succeed and store each layer once', async () => {
    const ref = `${reg.host}/test/img`;
    const [a, b] = await Promise.all([sb.tsrun(['pull', '-q', ref]), sb.tsrun(['pull', '-q', ref])]);
    expectExit(a, 0);
    expectExit(b, 0);
    expect(a.stdout).toBe(`${img.manifest.digest}\n`);
    expect(storedLayers(sb.root).sort()).toEqual(img.diffIds.map((d) => d.slice(7)).sort());
    expect(readdirSync(join(sb.root, 'tmp'))).toEqual([]);
    const run = await sb.tsrun(['run', '--rm', ref, 'cat', '/top']);
    expect(run.stdout).toBe('top\n');
  });

  it('kill -9 in the middle of a pull (layers half unpacked on both threads): the next pull finishes it and clears the debris', async () => {
    proxy.clear();
    proxy.fault(img.layers[0]!.digest, 'stall', 1);
    const sub = sb.spawn(['pull', `${proxy.host}/test/img`]);
    const tmp = join(sb.root, 'tmp');
    const staging = (): string[] => (existsSync(tmp) ? readdirSync(tmp).filter((n) => n.startsWith('layer-')) : []);
    for (let i = 0; i < 200 && !(staging().length > 0 && proxy.hits.get(`/v2/test/img/blobs/${img.layers[0]!.digest}`)); i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 300)); // the stalled layer is half unpacked, the other done or under way
    expect(staging().length, 'a layer being unpacked').toBeGreaterThan(0);
    process.kill(sub.pid!, 'SIGKILL');
    await sub.catch(() => undefined);
    expect(existsSync(`/proc/${sub.pid}`)).toBe(false);
    expect(storedLayers(sb.root)).not.toContain(img.diffIds[0]!.slice(7));
    const again = await sb.tsrun(['pull', '-q', `${proxy.host}/test/img`]);
    expectExit(again, 0);
    expect(storedLayers(sb.root).sort()).toEqual(img.diffIds.map((d) => d.slice(7)).sort());
    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(sb.root).filter((n) => n.endsWith('.lock'))).toEqual([]);
    const run = await sb.tsrun(['run', '--rm', `${proxy.host}/test/img`, 'cat', '/top']);
    expect(run.stdout).toBe('top\n');
  });
});

describe('authentication and TLS', () => {
  const sb = useSandbox();

  it('auth required but not given: an error that names tsrun login; login, pull, logout', async () => {
    const env = { DOCKER_CONFIG: sb.mkdir('docker') };
    const ref = `${secure.host}/private/img`;
    let r = await sb.tsrun(['pull', '--ca-file', secure.caFile!, ref], { env });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/authentication required/);
    expect(r.stderr).toContain(`tsrun login ${secure.host}`);
    r = await sb.tsrun(['login', '--ca-file', secure.caFile!, '-u', 'tester', '-p', 'wrong', secure.host], { env });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/refused the username or password/);
    r = await sb.tsrun(['login', '--ca-file', secure.caFile!, '-u', 'tester', '--password-stdin', secure.host], { env, input: 's3cret\n' });
    expectExit(r, 0);
    r = await sb.tsrun(['pull', '--ca-file', secure.caFile!, ref], { env });
    expectExit(r, 0);
    r = await sb.tsrun(['logout', secure.host], { env });
    expectExit(r, 0);
    r = await sb.tsrun(['pull', '--ca-file', secure.caFile!, ref], { env });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain('tsrun login');
  });

  it('bearer token flow: anonymous tokens like Docker Hub, and tokens for stored credentials', async () => {
    const env = { DOCKER_CONFIG: sb.mkdir('docker') };
    let r = await sb.tsrun(['pull', '-q', `${tokenAnon.host}/test/img`], { env });
    expectExit(r, 0);
    expect(tokenAnon.tokenRequests[0]).toEqual({ scope: 'repository:test/img:pull', service: 'tsrun-test', user: 'anonymous' });
    r = await sb.tsrun(['pull', `${tokenAuth.host}/test/sibling`], { env });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`tsrun login ${tokenAuth.host}`);
    expectExit(await sb.tsrun(['login', '-u', 'bob', '-p', 'pw', tokenAuth.host], { env }), 0);
    r = await sb.tsrun(['pull', '-q', `${tokenAuth.host}/test/sibling`], { env });
    expectExit(r, 0);
    expect(r.stdout).toBe(`${sibling.manifest.digest}\n`);
    expect(tokenAuth.tokenRequests.some((t) => t.user === 'bob' && t.scope === 'repository:test/sibling:pull')).toBe(true);
  });

  it('TLS without the CA is refused with a hint; credentials from an existing docker config.json work', async () => {
    const dir = sb.mkdir('docker');
    sb.writeFile('docker/config.json', JSON.stringify({ auths: { [secure.host]: { auth: Buffer.from('tester:s3cret').toString('base64') } } }));
    const env = { DOCKER_CONFIG: dir };
    const ref = `${secure.host}/private/img`;
    let r = await sb.tsrun(['pull', ref], { env });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/TLS to 127\.0\.0\.1:\d+:.*certificate/);
    expect(r.stderr).toContain('--ca-file');
    r = await sb.tsrun(['pull', '-q', '--ca-file', secure.caFile!, ref], { env });
    expectExit(r, 0);
    expect(r.stdout).toBe(`${img.manifest.digest}\n`);
  });
});

describe('tag, rmi, prune', () => {
  const sb = useSandbox();

  it('rmi never deletes a layer another image shares; tag adds a name; prune removes dangling images', async () => {
    for (const n of ['img', 'sibling']) expectExit(await sb.tsrun(['pull', '-q', `${reg.host}/test/${n}`]), 0);
    expectExit(await sb.tsrun(['tag', `${reg.host}/test/img`, 'mine:v1']), 0);
    let ls = await sb.tsrun(['images', '--format', 'json']);
    expect(ls.stdout.trim().split('\n')).toHaveLength(3);
    // two names: rmi by one name only untags
    let r = await sb.tsrun(['rmi', 'mine:v1']);
    expectExit(r, 0);
    expect(r.stdout).toBe('Untagged: mine:v1\n');
    r = await sb.tsrun(['rmi', `${reg.host}/test/img`]);
    expectExit(r, 0);
    expect(r.stdout).toContain(`Deleted: ${img.config.digest}`);
    expect(r.stdout).toContain(`Deleted: ${img.diffIds[1]}`);
    expect(r.stdout).not.toContain(img.diffIds[0]!);
    expect(storedLayers(sb.root).sort()).toEqual(sibling.diffIds.map((d) => d.slice(7)).sort());
    expect(storedBlobs(sb.root)).toContain(sibling.layers[0]!.digest.slice(7));
    expect(storedBlobs(sb.root)).not.toContain(img.layers[1]!.digest.slice(7));
    r = await sb.tsrun(['run', '--rm', `${reg.host}/test/sibling`, 'cat', '/other']);
    expect(r.stdout).toBe('other\n');
    r = await sb.tsrun(['rmi', 'nothere']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/no such image: nothere/);
    // untag the last name: the image is dangling and prune removes it
    expectExit(await sb.tsrun(['tag', `${reg.host}/test/sibling`, 'tmp:1']), 0);
    r = await sb.tsrun(['image', 'prune']);
    expect(r.stdout).toContain('Removed 0 image(s)');
    r = await sb.tsrun(['image', 'prune', '-a']);
    expectExit(r, 0);
    expect(r.stdout).toContain('Removed 1 image(s)');
    ls = await sb.tsrun(['images', '-q']);
    expect(ls.stdout).toBe('');
    expect(storedLayers(sb.root)).toEqual([]);
  });
});
