// The lifecycle at scale (issue 5): 50 detached containers started in parallel under
// one monitor, all listed, stopped and removed with nothing left; and 200 sequential
// `run --rm true` with no growth in mounts, cgroups, fds or disk.
import { existsSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';

function cgroupChildren(parent: string): string[] {
  const out: string[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const d = join('/sys/fs/cgroup', h, parent);
    if (!existsSync(d)) continue;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) out.push(join(d, e.name));
  }
  return out;
}

function duBytes(dir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else n += statSync(p).size;
    }
  };
  if (existsSync(dir)) walk(dir);
  return n;
}

describe('lifecycle at scale', () => {
  const sb = useSandbox();
  const parent = `tsrun-e2e-lcs-${randomBytes(4).toString('hex')}`;
  const env = { TSRUN_CGROUP_PARENT: parent };
  const ts = (args: string[]) => sb.tsrun(args, { env, timeoutMs: 300_000 });

  afterEach(async () => {
    // A failed test's containers go first, so its cgroup parent can be removed.
    const left = (await ts(['ps', '-aq'])).stdout.trim().split('\n').filter(Boolean);
    if (left.length) await ts(['rm', '-f', ...left]);
    for (const h of readdirSync('/sys/fs/cgroup')) {
      const d = join('/sys/fs/cgroup', h, parent);
      if (existsSync(d)) rmdirSync(d);
    }
  });

  it('50 detached containers started in parallel: all listed, one monitor, all stopped and removed, nothing leaked', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `c${i}`);
    const started = await Promise.all(names.map((n) => ts(['run', '-d', '--name', n, '--rootfs', sb.rootfs(), '--', 'sleep', '1000'])));
    for (const r of started) expectExit(r, 0);
    const ids = new Set(started.map((r) => r.stdout.trim()));
    expect(ids.size).toBe(50);
    const ps = await ts(['ps', '--format', '{{.Names}} {{.State}}']);
    expect(ps.stdout.trim().split('\n').sort()).toEqual(names.map((n) => `${n} running`).sort());
    // One monitor for all of them, and it is their parent.
    const monitor = Number(readFileSync(join(sb.root, 'run', 'monitor.pid'), 'utf8').split(' ')[0]);
    const pids = await Promise.all(names.slice(0, 5).map(async (n) => Number((await ts(['inspect', '-f', '{{.State.Pid}}', n])).stdout)));
    for (const p of pids) expect(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]).toBe(String(monitor));
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${monitor}/status`, 'utf8'))![1]) * 1024;
    expect(rss / 50, 'monitor RSS per container').toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(cgroupChildren(parent).filter((d) => d.includes('/memory/'))).toHaveLength(50);
    const stop = await ts(['stop', '-t', '0', ...names]);
    expectExit(stop, 0);
    expect((await ts(['ps', '-q'])).stdout).toBe('');
    expectExit(await ts(['rm', ...names]), 0);
    expect((await ts(['ps', '-aq'])).stdout).toBe('');
    expect(cgroupChildren(parent)).toEqual([]);
    expect(existsSync(`/proc/${monitor}`) ? readFileSync(`/proc/${monitor}/stat`, 'utf8').split(') ')[1]![0] : 'gone').toMatch(/gone|Z/);
    expect(readdirSync(join(sb.root, 'containers'))).toEqual([]);
  }, 600_000);

  it('200 sequential run --rm true: no growth in mounts, cgroups, fds or disk', async () => {
    const mounts = (): number => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(sb.dir)).length;
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const warm = await ts(['run', '--rm', '--rootfs', sb.rootfs(), '--', 'true']);
    expectExit(warm, 0);
    const before = { mounts: mounts(), fds: fds(), disk: duBytes(sb.root), files: readdirSync(join(sb.root, 'containers')).length };
    for (let i = 0; i < 200; i++) {
      const r = await ts(['run', '--rm', '--rootfs', sb.rootfs(), '--', 'true']);
      expectExit(r, 0);
    }
    expect(mounts()).toBe(before.mounts);
    expect(fds()).toBe(before.fds);
    expect(cgroupChildren(parent)).toEqual([]);
    expect(readdirSync(join(sb.root, 'containers')).length).toBe(before.files);
    expect(readdirSync(join(sb.root, 'run', 'containers'))).toEqual([]);
    // locks and the like may exist, but nothing grows per run
    expect(duBytes(sb.root)).toBeLessThanOrEqual(before.disk + 4096);
    expect((await ts(['ps', '-aq'])).stdout).toBe('');
  }, 900_000);
});
