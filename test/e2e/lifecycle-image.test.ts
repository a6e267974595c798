// Detached containers from an image (issue 5): the image's StopSignal and HEALTHCHECK
// are honoured, the overlay's upper dir survives stop/start, and rm removes it.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { buildImage, busyboxTarFiles } from '../helpers/images.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { mountsUnder } from '../helpers/tempdirs.js';

let reg: TestRegistry;

beforeAll(async () => {
  reg = await startRegistry();
  const img = await buildImage({
    layers: [busyboxTarFiles()],
    config: {
      Cmd: ['sh', '-c', 'trap "echo got-stop-signal; exit 42" USR1; while true; do sleep 0.1; done'],
      Env: ['PATH=/bin:/usr/bin'],
      StopSignal: 'SIGUSR1',
      // docker's config: durations in nanoseconds
      Healthcheck: { Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: 300e6, Timeout: 2e9, Retries: 1 },
    },
  });
  await reg.push('test/lifecycle', 'latest', img);
}, 120_000);

afterAll(async () => {
  await reg?.stop();
});

describe('lifecycle with an image', () => {
  const sb = useSandbox();
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  it('StopSignal and HEALTHCHECK from the image; the upper dir lives across stop/start; rm removes it', async () => {
    const ref = `${reg.host}/test/lifecycle`;
    const d = await sb.tsrun(['run', '-d', '--network', 'none', '--name', 'img', ref]);
    expectExit(d, 0);
    const id = d.stdout.trim();
    try {
      const cfg = await sb.tsrun(['inspect', '-f', '{{.Config.StopSignal}} {{json .Config.Healthcheck.Test}} {{.Image}}', 'img']);
      expect(cfg.stdout.trim()).toMatch(/^SIGUSR1 \["CMD-SHELL","test -f \/tmp\/ok"\] \S+\/test\/lifecycle(:latest)?$/);
      let status = '';
      for (let i = 0; i < 100 && status !== 'unhealthy'; i++, await sleep(100)) status = (await sb.tsrun(['inspect', '-f', '{{.State.Health.Status}}', 'img'])).stdout.trim();
      expect(status).toBe('unhealthy');
      expectExit(await sb.tsrun(['exec', 'img', 'touch', '/tmp/ok']), 0);
      for (let i = 0; i < 100 && status !== 'healthy'; i++, await sleep(100)) status = (await sb.tsrun(['inspect', '-f', '{{.State.Health.Status}}', 'img'])).stdout.trim();
      expect(status).toBe('healthy');
      // cp works out of a running image container (its overlay, seen through its mount namespace)
      expectExit(await sb.tsrun(['cp', 'img:/tmp/ok', join(sb.dir, 'ok')]), 0);
      expect(existsSync(join(sb.dir, 'ok'))).toBe(true);
      expectExit(await sb.tsrun(['stop', 'img']), 0);
      // The image's StopSignal reached the trap: its exit code, not SIGKILL's 137.
      expect((await sb.tsrun(['inspect', '-f', '{{.State.ExitCode}}', 'img'])).stdout).toBe('42\n');
      expect((await sb.tsrun(['logs', 'img'])).stdout).toBe('got-stop-signal\n');
      expect(mountsUnder(sb.root)).toEqual([]);
      const cp = await sb.tsrun(['cp', 'img:/tmp/ok', join(sb.dir, 'ok2')]);
      expectExit(cp, 125);
      expect(cp.stderr).toMatch(/not running/);
      // start again: what the container wrote is still in its upper dir
      expectExit(await sb.tsrun(['start', 'img']), 0);
      expect((await sb.tsrun(['exec', 'img', 'ls', '/tmp/ok'])).stdout).toBe('/tmp/ok\n');
    } finally {
      expectExit(await sb.tsrun(['rm', '-f', 'img']), 0);
    }
    expect(readdirSync(join(sb.root, 'containers'))).not.toContain(id);
    expect(mountsUnder(sb.root)).toEqual([]);
  });
});
