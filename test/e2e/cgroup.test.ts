// cgroups for real: every limit is set by bin/tsrun and then observed, from inside the
// container or from the container's own cgroup files on the host. Runs on whatever
// this kernel has: hybrid/v1 here, pure v2 inside ../shared/tools/cgroup2-vm (where
// JavaScript is 10-20x slower: TSRUN_E2E_SLOW scales the waits).
//
// Each test uses its own cgroup parent (TSRUN_CGROUP_PARENT), so its leak check looks
// only at cgroups it made, never at other engineers' or the machine's.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { sleep, until } from '../helpers/wait.js';
import { cgroupLayout, runningContainer, hierarchies, newCgroupParent, removeCgroupParent } from '../helpers/cgroups.js';

const SLOW = Number(process.env.TSRUN_E2E_SLOW ?? 1);
const T = (ms: number): number => ms * SLOW;
const layout = cgroupLayout;
const onV2 = (c: 'memory' | 'cpu' | 'pids' | 'cpuset'): boolean => layout.choice[c] === 'v2';
const MiB = 1024 * 1024;

/** The host directory of `rel` in the hierarchy that serves a controller. */
function cgDir(c: 'memory' | 'cpu' | 'cpuacct' | 'pids' | 'cpuset' | 'freezer', rel: string): string {
  if (c !== 'cpuacct' && c !== 'freezer' && onV2(c)) return join(layout.v2!.mount, rel);
  if (c === 'cpuacct' && onV2('cpu')) return join(layout.v2!.mount, rel);
  return join(layout.v1[c]!, rel);
}

describe('cgroups', () => {
  const sb = useSandbox();
  let parent = '';
  const env = (): Record<string, string> => ({ TSRUN_CGROUP_PARENT: parent });
  // The helper's 30 s default is too short under TCG, where a 64 MB allocation alone takes 20 s.
  const opts = (): { env: Record<string, string>; timeoutMs: number } => ({ env: env(), timeoutMs: T(30_000) });

  beforeEach(() => {
    parent = newCgroupParent();
  });

  afterEach(() => {
    expect(removeCgroupParent(parent), 'cgroups left behind').toEqual([]);
  });

  const runningState = (sub: { exitCode: number | null }) => runningContainer(sb.root, sub, T(15_000));

  it('records its cgroup in state, under the configured parent, and removes it at the end', async () => {
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'trap "exit 0" TERM; sleep 30 & wait'], opts());
    const s = await runningState(sub);
    expect(s.cgroupsPath).toBe(`${parent}/${s.id}`);
    const procs = readFileSync(join(cgDir('memory', s.cgroupsPath), 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    expect(procs).toContain(s.pid);
    process.kill(sub.pid!, 'SIGTERM'); // not sub.kill: execa would SIGKILL tsrun 2 s later, mid-cleanup under TCG
    const r = await sub;
    expect(r.exitCode).toBe(0);
    for (const h of hierarchies()) expect(existsSync(join(h, s.cgroupsPath)), h).toBe(false);
  }, T(60_000));

  it('a process allocating twice its --memory is OOM-killed: exit 137, the reason on stderr, and inspect shows OOMKilled', async () => {
    const r = await sb.run(['sh', '-c', 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived ${#x}'], ['--name', 'oom', '--memory', '32m', '--memory-swap', '32m'], opts());
    expectExit(r, 137);
    expect(r.stdout).not.toMatch(/survived/);
    expect(r.stderr).toMatch(/the container was killed because it exceeded its memory limit/);
    const i = await sb.tsrun(['inspect', '-f', '{{.State.OOMKilled}} {{.State.ExitCode}}', 'oom'], opts());
    expect(i.stdout.trim()).toBe('true 137');
    expectExit(await sb.tsrun(['rm', 'oom'], opts()), 0);
  }, T(60_000));

  it('the same allocation survives without a limit (the OOM test can fail)', async () => {
    const r = await sb.run(['sh', '-c', 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived ${#x}'], [], opts());
    expectExit(r, 0);
    expect(r.stdout).toBe('survived 67108864\n');
    expect(r.stderr).not.toMatch(/memory limit/);
  }, T(60_000));

  it('--pids-limit 20 stops a fork loop at 20 and the container survives', async () => {
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--pids-limit', '20', '--', 'sh', '-c',
      // The sleeps outlive the test's wait (on a loaded host forking 20 can take seconds);
      // PID 1's exit ends them, as it ends every process of the namespace.
      '(for i in $(seq 1 60); do sleep 60 & done) 2>/dev/null; echo forked; sleep 12; echo alive'], opts());
    const s = await runningState(sub);
    const dir = cgDir('pids', s.cgroupsPath);
    expect(readFileSync(join(dir, 'pids.max'), 'utf8').trim()).toBe('20');
    let peak = 0;
    let refused = 0;
    // Both, polled together: pids.current can read 20 a moment before the loop's next
    // fork is refused and counted in pids.events.
    await until(() => {
      try {
        peak = Math.max(peak, Number(readFileSync(join(dir, 'pids.current'), 'utf8')));
        // The kernel counted refused forks: the loop hit the limit, not its own end.
        refused = Number(/max (\d+)/.exec(readFileSync(join(dir, 'pids.events'), 'utf8'))![1]);
      } catch {
        /* gone */
      }
      return peak >= 20 && refused > 0;
    }, 'pids.current to reach 20 and a fork to be refused', T(11_000)).catch((e: Error) => {
      throw new Error(`${e.message} (the highest seen was ${peak}; refused forks: ${refused})`);
    });
    const r = await sub;
    expectExit(r, 0);
    expect(r.stdout).toBe('forked\nalive\n');
    expect(peak).toBe(20);
  }, T(60_000));

  it('--cpus 0.5 holds a busy loop to 0.4-0.6 CPU over 3 s, by the cgroup\'s own usage', async () => {
    // The machine is shared and often loaded: the top --cpu-shares, and the same
    // weight on this test's own parent cgroup (the level that competes with the host's
    // other processes), let the container win the CPU it is entitled to, so what holds
    // it at 0.5 is the quota alone.
    const parentDir = join(onV2('cpu') ? layout.v2!.mount : layout.v1.cpu!, parent);
    mkdirSync(parentDir);
    if (onV2('cpu')) writeFileSync(join(parentDir, 'cpu.weight'), '10000');
    else writeFileSync(join(parentDir, 'cpu.shares'), '262144');
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--cpus', '0.5', '--cpu-shares', '262144', '--', 'sh', '-c', 'trap "exit 0" TERM; yes > /dev/null & wait'], opts());
    const s = await runningState(sub);
    const usage = (): number => {
      if (onV2('cpu')) return Number(/usage_usec (\d+)/.exec(readFileSync(join(cgDir('cpu', s.cgroupsPath), 'cpu.stat'), 'utf8'))![1]) * 1000;
      return Number(readFileSync(join(cgDir('cpuacct', s.cgroupsPath), 'cpuacct.usage'), 'utf8'));
    };
    await sleep(500);
    // Up to four 3 s windows: the quota guarantees the upper bound in every one; the
    // lower bound needs the shared machine to have the CPU free at some point.
    const windows: number[] = [];
    for (let i = 0; i < 4; i++) {
      const u0 = usage();
      const t0 = process.hrtime.bigint();
      await sleep(3000);
      windows.push((usage() - u0) / Number(process.hrtime.bigint() - t0));
      if (windows.at(-1)! >= 0.4) break;
    }
    process.kill(sub.pid!, 'SIGTERM'); // not sub.kill: execa would SIGKILL tsrun 2 s later, mid-cleanup under TCG
    expectExit(await sub, 0);
    for (const w of windows) expect(w, `CPUs used per 3 s window: ${windows.join(', ')}`).toBeLessThanOrEqual(0.6);
    expect(Math.max(...windows), `CPUs used per 3 s window: ${windows.join(', ')}`).toBeGreaterThanOrEqual(0.4);
  }, T(60_000));

  it('--cpuset-cpus 0 pins the process', async () => {
    const r = await sb.run(['grep', 'Cpus_allowed_list', '/proc/self/status'], ['--cpuset-cpus', '0'], opts());
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^Cpus_allowed_list:\s+0$/m);
  }, T(60_000));

  it('the container sees its own cgroup as / (cgroup namespace)', async () => {
    const r = await sb.run(['cat', '/proc/self/cgroup'], ['--memory', '64m'], opts());
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    const managed = lines.filter((l) => /:(memory|pids|cpuset|blkio|cpu,cpuacct|cpu|cpuacct|freezer):/.test(l));
    if (layout.mode === 'v2') {
      expect(lines, r.stdout).toEqual(['0::/']);
    } else {
      expect(managed.length).toBeGreaterThan(0);
      for (const l of managed) expect(l, r.stdout).toMatch(/:\/$/);
    }
  }, T(60_000));

  it('update raises a memory limit live', async () => {
    const go = join(sb.rootfs(), 'tmp', 'go');
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--memory', '32m', '--memory-swap', '32m', '--', 'sh', '-c',
      'while [ ! -e /tmp/go ]; do sleep 0.1; done; x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived ${#x}'], opts());
    const s = await runningState(sub);
    const memFile = join(cgDir('memory', s.cgroupsPath), onV2('memory') ? 'memory.max' : 'memory.limit_in_bytes');
    expect(Number(readFileSync(memFile, 'utf8'))).toBe(32 * MiB);
    const u = await sb.tsrun(['update', '--memory', '512m', '--memory-swap', '512m', s.id.slice(0, 12)], opts());
    expectExit(u, 0);
    expect(u.stdout).toBe(`${s.id.slice(0, 12)}\n`);
    expect(Number(readFileSync(memFile, 'utf8'))).toBe(512 * MiB);
    writeFileSync(go, '');
    const r = await sub;
    expectExit(r, 0);
    expect(r.stdout).toBe('survived 67108864\n');
  }, T(60_000));

  it('stats agree with the cgroup files', async () => {
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--memory', '64m', '--pids-limit', '50', '--', 'sh', '-c', 'trap "exit 0" TERM; sleep 30 & wait'], opts());
    const s = await runningState(sub);
    const r = await sb.tsrun(['stats', '--no-stream', '--format', 'json', s.id], opts());
    expectExit(r, 0);
    const row = JSON.parse(r.stdout.trim()) as { ID: string; MemUsage: string; PIDs: string; Cgroup: Record<string, number> };
    const memDir = cgDir('memory', s.cgroupsPath);
    const pidsDir = cgDir('pids', s.cgroupsPath);
    expect(row.ID).toBe(s.id.slice(0, 12));
    expect(row.Cgroup.memoryLimit).toBe(Number(readFileSync(join(memDir, onV2('memory') ? 'memory.max' : 'memory.limit_in_bytes'), 'utf8')));
    expect(row.MemUsage).toMatch(/ \/ 64MiB$/);
    expect(row.Cgroup.pidsLimit).toBe(50);
    // sh and sleep: the pid count is steady while the container sleeps.
    expect(row.Cgroup.pidsCurrent).toBe(Number(readFileSync(join(pidsDir, 'pids.current'), 'utf8')));
    expect(row.PIDs).toBe('2');
    const usageNow = Number(readFileSync(join(memDir, onV2('memory') ? 'memory.current' : 'memory.usage_in_bytes'), 'utf8'));
    expect(Math.abs(row.Cgroup.memoryUsage! - usageNow)).toBeLessThan(4 * MiB);
    expect(row.Cgroup.memoryUsage).toBeGreaterThan(0);
    process.kill(sub.pid!, 'SIGTERM'); // not sub.kill: execa would SIGKILL tsrun 2 s later, mid-cleanup under TCG
    expectExit(await sub, 0);
  }, T(60_000));

  it('a value the kernel refuses names the flag and leaves nothing behind', async () => {
    const r = await sb.run(['true'], ['--cpuset-cpus', '63'], opts());
    expectExit(r, 125);
    expect(r.stderr).toMatch(/--cpuset-cpus/);
    // afterEach checks that no cgroup is left; the sandbox checks state and processes.
  }, T(60_000));

  it('after kill -9 of tsrun, the next tsrun kills the orphan and removes its cgroup', async () => {
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--', 'sleep', '60'], opts());
    const s = await runningState(sub);
    sub.kill('SIGKILL');
    // tsrun is gone; its container is not (and holds tsrun's stdout open, so `sub`
    // settles only once the orphan dies).
    await until(() => !existsSync(`/proc/${sub.pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${sub.pid}/status`, 'utf8')), 'tsrun to die', T(5000));
    expect(existsSync(`/proc/${s.pid}`)).toBe(true);
    expect(existsSync(cgDir('memory', s.cgroupsPath))).toBe(true);
    const r = await sb.run(['true'], [], opts());
    expectExit(r, 0);
    await until(() => !existsSync(`/proc/${s.pid}`), 'the orphan to die', T(5000));
    await sub;
    for (const h of hierarchies()) expect(existsSync(join(h, s.cgroupsPath)), h).toBe(false);
  }, T(60_000));

  it('info reports the mode and the controllers it uses', async () => {
    const r = await sb.tsrun(['info', '--format', 'json']);
    expectExit(r, 0);
    const info = JSON.parse(r.stdout) as { cgroup: { mode: string; use: Record<string, string | null> }; features: Record<string, { available: boolean }> };
    expect(info.cgroup.mode).toBe(layout.mode);
    expect(info.cgroup.use.memory).toBe(layout.choice.memory);
    expect(info.features['namespace.cgroup']!.available).toBe(true);
    expect(Object.keys(info.features)).toEqual(expect.arrayContaining(['overlay', 'cgroup.kill', 'pidfd', 'procfs pidns=', 'openat2']));
  }, T(60_000));
});
