// `tsrun run IMAGE`: the image's layers stacked by overlayfs inside the container's
// mount namespace, and the image config applied with docker's semantics.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { type TarFile, buildImage, busyboxTarFiles } from '../helpers/images.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { mountsUnder } from '../helpers/tempdirs.js';
import { waitForOutput } from '../helpers/tsrun.js';

let reg: TestRegistry;
const LAYERS = 50;

beforeAll(async () => {
  reg = await startRegistry();
  // whiteouts: file, directory, and an opaque directory
  const wh = await buildImage({
    layers: [
      busyboxTarFiles(),
      [
        { name: 'keep/', type: 'directory' }, { name: 'keep/a', content: 'a\n' },
        { name: 'gone', content: 'x' }, { name: 'gonedir/', type: 'directory' }, { name: 'gonedir/f', content: 'x' },
        { name: 'opq/', type: 'directory' }, { name: 'opq/old1', content: 'x' }, { name: 'opq/old2', content: 'x' },
      ],
      [
        { name: '.wh.gone' }, { name: '.wh.gonedir' },
        { name: 'opq/', type: 'directory' }, { name: 'opq/.wh..wh..opq' }, { name: 'opq/new', content: 'new\n' },
        { name: 'keep/b', content: 'b\n' },
      ],
    ],
  });
  await reg.push('test/whiteouts', 'latest', wh);
  const cfgImage = await buildImage({
    layers: [busyboxTarFiles(), [{ name: 'srv/', type: 'directory' }, { name: 'srv/app/', type: 'directory' }]],
    config: { Entrypoint: ['/bin/echo', 'ep'], Cmd: ['default-cmd'], Env: ['PATH=/bin:/usr/bin', 'IMG=image', 'OVER=image'], WorkingDir: '/srv/app', User: 'user',
      StopSignal: 'SIGQUIT', ExposedPorts: { '8080/tcp': {} }, Labels: { 'org.example.team': 'images' } },
  });
  await reg.push('test/config', 'latest', cfgImage);
  const many: TarFile[][] = [busyboxTarFiles()];
  for (let i = 1; i < LAYERS; i++) many.push([{ name: `l${i}`, content: `${i}\n` }, ...(i === LAYERS - 1 ? [{ name: 'l1', content: 'top\n' }] : [])]);
  await reg.push('test/many', 'latest', await buildImage({ layers: many }));
});

afterAll(async () => {
  await reg?.stop();
});

describe('tsrun run IMAGE', () => {
  const sb = useSandbox();

  it('shows whiteouts as deletions: file, directory, opaque directory', async () => {
    const r = await sb.tsrun(['run', '--rm', `${reg.host}/test/whiteouts`, 'sh', '-c',
      'ls /keep | tr "\\n" " "; echo; ls /opq | tr "\\n" " "; echo; test -e /gone && echo gone-exists; test -e /gonedir && echo gonedir-exists; echo end']);
    expectExit(r, 0);
    expect(r.stdout).toBe('a b \nnew \nend\n');
  });

  it('writes go to the container\'s upper dir, never to the shared layers; --rm removes it', async () => {
    const ref = `${reg.host}/test/whiteouts`;
    const r = await sb.tsrun(['run', '--rm', ref, 'sh', '-c', 'echo changed > /keep/a; rm /keep/b; cat /keep/a']);
    expectExit(r, 0);
    expect(r.stdout).toBe('changed\n');
    const again = await sb.tsrun(['run', '--rm', ref, 'cat', '/keep/a', '/keep/b']);
    expectExit(again, 0);
    expect(again.stdout).toBe('a\nb\n');
    expect(readdirSync(join(sb.root, 'containers'))).toEqual([]);
    expect(mountsUnder(sb.root)).toEqual([]);
  });

  it('without --rm the container keeps its upper dir (and records its image)', async () => {
    const r = await sb.tsrun(['run', `${reg.host}/test/whiteouts`, 'sh', '-c', 'echo hi > /newfile']);
    expectExit(r, 0);
    const [id] = readdirSync(join(sb.root, 'containers'));
    expect(existsSync(join(sb.root, 'containers', id!, 'upper/newfile'))).toBe(true);
    const rmi = await sb.tsrun(['rmi', `${reg.host}/test/whiteouts`]);
    expect(rmi.exitCode).toBe(125);
    expect(rmi.stderr).toMatch(/in use by container/);
  });

  it('a run --rm whose tsrun was killed has its dirs swept by the next run', async () => {
    const ref = `${reg.host}/test/whiteouts`;
    expectExit(await sb.tsrun(['pull', '-q', ref]), 0);
    const sub = sb.spawn(['run', '--rm', ref, 'sh', '-c', 'echo up; exec sleep 30']);
    await waitForOutput(sub, /up/);
    expect(readdirSync(join(sb.root, 'containers'))).toHaveLength(1);
    process.kill(sub.pid!, 'SIGKILL');
    // The orphaned container still holds tsrun's stdout, so wait for the pid, not the pipes.
    for (let i = 0; i < 100 && existsSync(`/proc/${sub.pid}`); i++) await new Promise((r) => setTimeout(r, 50));
    const r = await sb.tsrun(['run', '--rm', ref, 'true']);
    expectExit(r, 0);
    expect(readdirSync(join(sb.root, 'containers'))).toEqual([]);
    await sub; // its orphan was killed by the next run's garbage collection
  });

  it('the sweep leaves a detached --rm container alone (its owner is the monitor)', async () => {
    const ref = `${reg.host}/test/whiteouts`;
    const d = await sb.tsrun(['run', '-d', '--rm', ref, 'sleep', '30']);
    expectExit(d, 0);
    const id = d.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    try {
      const r = await sb.tsrun(['run', '--rm', ref, 'true']);
      expectExit(r, 0);
      expect(readdirSync(join(sb.root, 'containers'))).toEqual([id]);
      expect(existsSync(join(sb.root, 'containers', id, 'upper'))).toBe(true);
    } finally {
      await sb.tsrun(['rm', '-f', id]);
    }
  });

  it('applies Entrypoint, Cmd, Env, WorkingDir and User like docker', async () => {
    const ref = `${reg.host}/test/config`;
    let r = await sb.tsrun(['run', '--rm', ref]);
    expectExit(r, 0);
    expect(r.stdout).toBe('ep default-cmd\n');
    r = await sb.tsrun(['run', '--rm', ref, 'a', 'b']);
    expect(r.stdout).toBe('ep a b\n');
    r = await sb.tsrun(['run', '--rm', '-e', 'OVER=flag', '-e', 'NEW=1', '--entrypoint', 'sh', ref, '-c', 'echo $IMG $OVER $NEW $HOME; pwd; id']);
    expectExit(r, 0);
    expect(r.stdout).toBe('image flag 1 /home/user\n/srv/app\nuid=1000(user) gid=1000(user) groups=10(wheel),29(audio)\n');
    r = await sb.tsrun(['run', '--rm', '-w', '/tmp', '-u', 'nobody', '--entrypoint', '', ref, 'sh', '-c', 'pwd; id -u; id -g']);
    expectExit(r, 0);
    expect(r.stdout).toBe('/tmp\n65534\n65534\n');
    r = await sb.tsrun(['run', '--rm', '-u', 'ghost', ref]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/unable to find user ghost/);
    expect(readdirSync(join(sb.root, 'containers'))).toEqual([]);
  });

  it('image inspect keeps StopSignal, ExposedPorts and Labels', async () => {
    const ref = `${reg.host}/test/config`;
    expectExit(await sb.tsrun(['pull', '-q', ref]), 0);
    const r = await sb.tsrun(['image', 'inspect', ref]);
    expectExit(r, 0);
    const [img] = JSON.parse(r.stdout) as { Config: Record<string, unknown>; RepoTags: string[]; RootFS: { Layers: string[] } }[];
    expect(img!.Config).toMatchObject({ StopSignal: 'SIGQUIT', ExposedPorts: { '8080/tcp': {} }, Labels: { 'org.example.team': 'images' }, User: 'user' });
    expect(img!.RepoTags).toEqual([`${ref}:latest`]);
    expect(img!.RootFS.Layers).toHaveLength(2);
  });

  it(`runs an image with ${LAYERS} layers (beyond one page of overlay options)`, async () => {
    const r = await sb.tsrun(['--trace', 'run', '--rm', `${reg.host}/test/many`, 'sh', '-c', `cat /l1 /l${LAYERS - 1} /l25`]);
    expectExit(r, 0);
    expect(r.stdout).toBe(`top\n${LAYERS - 1}\n25\n`);
    expect(r.stderr).toContain('lowerdir+');
  });

  it('--pull never fails for a missing image; missing pulls once; always pulls again', async () => {
    const ref = `${reg.host}/test/config`;
    let r = await sb.tsrun(['run', '--rm', '--pull', 'never', ref]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/no such image/);
    r = await sb.tsrun(['run', '--rm', ref]);
    expect(r.stderr).toMatch(/Pulling from test\/config/);
    r = await sb.tsrun(['run', '--rm', ref]);
    expect(r.stderr).not.toMatch(/Pulling/);
    r = await sb.tsrun(['run', '--rm', '--pull', 'always', ref]);
    expectExit(r, 0);
    expect(r.stderr).toMatch(/Pulling from test\/config/);
    expect(r.stderr).toMatch(/Already exists/);
  });
});
