#!/usr/bin/env node
// Lifecycle benchmark (issue 5):
//   1. host RSS of tsrun's own processes per running detached container, at 50
//      containers (budget: <= 2 MiB each). tsrun's processes are the shared monitor and
//      nothing else; the containers' own processes are reported apart, not counted.
//   2. latency of `tsrun exec C true` next to `podman exec C true`;
//   3. latency of `tsrun run -d` next to `podman run -d` (both --network none, running
//      `sleep`, removed after each round outside the timing).
// Prints medians and ratios.
//
//   npm run build && sudo node bench/lifecycle.mjs      (BENCH_N=10 rounds by default)
//
// The rootfs comes from the test helper (Debian's busybox-static), bundled with esbuild.
// tsrun runs on it with --rootfs; podman runs it as an image made by `podman import` of
// the same tree. Podman has its own temp config (cgroupfs manager, runc since crun
// refuses this host's hybrid cgroups, file event log) and storage.
import { execFileSync, spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TSRUN, havePodman as podmanInstalled, median, podmanEnv, requireRoot, row, testHelpers, timeSync as time } from './lib.mjs';

const N = Number(process.env.BENCH_N ?? 10);
const COUNT = Number(process.env.BENCH_CONTAINERS ?? 50);

requireRoot('bench/lifecycle.mjs starts containers');

const work = mkdtempSync(join(tmpdir(), 'tsrun-bench-lifecycle-'));
const tRoot = join(work, 'tsrun');
const cgParent = `tsrun-bench-${process.pid}`;
const tEnv = { ...process.env, TSRUN_ROOT: tRoot, TSRUN_CGROUP_PARENT: cgParent };



const tsrun = (args) => execFileSync(TSRUN, args, { env: tEnv, encoding: 'utf8' }).trim();
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

/** Every process whose command line is a tsrun (the monitor, and any CLI still running). */
function tsrunProcesses() {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      const env = readFileSync(`/proc/${e}/environ`, 'utf8');
      if (cmd.some((a) => a.endsWith('bin/tsrun')) && env.includes(`TSRUN_ROOT=${tRoot}`)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

function cleanup() {
  try {
    const ids = tsrun(['ps', '-aq']).split('\n').filter(Boolean);
    if (ids.length) tsrun(['rm', '-f', ...ids]);
  } catch {
    /* best effort */
  }
  spawnSync('sh', ['-c', `grep -o " ${work}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`], { stdio: 'ignore' });
  for (const h of readdirSync('/sys/fs/cgroup')) {
    spawnSync('rmdir', [join('/sys/fs/cgroup', h, cgParent)], { stdio: 'ignore' });
  }
  rmSync(work, { recursive: true, force: true });
}

try {
  const { buildBusyboxRootfs } = await testHelpers(work, ['rootfs']);
  const rootfs = buildBusyboxRootfs(join(work, 'rootfs'));

  // 1. RSS at COUNT containers, started in parallel batches
  const names = Array.from({ length: COUNT }, (_, i) => `b${i}`);
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(names.slice(i, i + 10).map((n) => new Promise((res, rej) => {
      const p = spawn(TSRUN, ['run', '-d', '--network', 'none', '--name', n, '--rootfs', rootfs, '--', 'sleep', '100000'], { env: tEnv, stdio: 'ignore' });
      p.on('exit', (c) => (c === 0 ? res() : rej(new Error(`run -d ${n} exited ${c}`))));
    })));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const running = tsrun(['ps', '-q']).split('\n').filter(Boolean).length;
  const procs = tsrunProcesses();
  const tsrunRss = procs.reduce((s, p) => s + rssKiB(p), 0);
  const ctrPids = names.map((n) => Number(tsrun(['inspect', '-f', '{{.State.Pid}}', n])));
  const ctrRss = ctrPids.reduce((s, p) => s + rssKiB(p), 0);
  const perMiB = tsrunRss / 1024 / running;
  console.log(`${running} detached containers: tsrun processes ${procs.length} (the monitor), ${(tsrunRss / 1024).toFixed(1)} MiB RSS in all`);
  console.log(`  tsrun RSS per container: ${perMiB.toFixed(2)} MiB (budget 2 MiB: ${perMiB <= 2 ? 'met' : 'NOT met'}); the containers' own processes: ${(ctrRss / 1024 / running).toFixed(2)} MiB each, not counted`);
  tsrun(['rm', '-f', ...names]);

  // podman's temp configuration
  const havePodman = podmanInstalled();
  const pEnv = { ...process.env, ...podmanEnv(join(work, 'podman'), { netns: 'none' }) };
  if (havePodman) {
    execFileSync('sh', ['-c', `tar -C '${rootfs}' -c . | podman import - bench-busybox`], { env: pEnv, stdio: 'ignore' });
  } else console.log('podman not installed: its rows are left out');

  // 2. exec latency
  const ex = { tsrun: [], podman: [] };
  tsrun(['run', '-d', '--network', 'none', '--name', 'ex', '--rootfs', rootfs, '--', 'sleep', '100000']);
  if (havePodman) time('podman', ['run', '-d', '--network', 'none', '--name', 'ex', 'bench-busybox', 'sleep', '100000'], pEnv);
  for (let i = 0; i < N + 2; i++) {
    const a = time(TSRUN, ['exec', 'ex', 'true'], tEnv).ms;
    const b = havePodman ? time('podman', ['exec', 'ex', 'true'], pEnv).ms : undefined;
    if (i < 2) continue;
    ex.tsrun.push(a);
    if (b !== undefined) ex.podman.push(b);
  }
  tsrun(['rm', '-f', 'ex']);
  if (havePodman) spawnSync('podman', ['rm', '-f', '-t', '0', 'ex'], { env: pEnv, stdio: 'ignore' });

  // 3. run -d latency (the container is removed after each round, outside the timing).
  // "cold": no other container and no grace (TSRUN_MONITOR_LINGER_MS=0, the default), so
  // each run -d starts the monitor; "again": the same with a 30 s grace, so the monitor of
  // the previous round is still up (a script's run -d; rm -f; run -d); "warm": one other
  // container keeps the monitor up, the usual case on a busy host.
  const rd = { tsrun: [], tsrunCold: [], tsrunAgain: [], podman: [] };
  const coldEnv = { ...tEnv, TSRUN_MONITOR_LINGER_MS: '0' };
  for (let i = 0; i < N + 2; i++) {
    const c = time(TSRUN, ['run', '-d', '--network', 'none', '--rootfs', rootfs, '--', 'sleep', '100000'], coldEnv);
    execFileSync(TSRUN, ['rm', '-f', c.out], { env: coldEnv });
    if (i >= 2) rd.tsrunCold.push(c.ms);
  }
  const againEnv = { ...tEnv, TSRUN_MONITOR_LINGER_MS: '30000' };
  for (let i = 0; i < N + 2; i++) {
    const c = time(TSRUN, ['run', '-d', '--network', 'none', '--rootfs', rootfs, '--', 'sleep', '100000'], againEnv);
    execFileSync(TSRUN, ['rm', '-f', c.out], { env: againEnv });
    if (i >= 2) rd.tsrunAgain.push(c.ms);
  }
  // The lingering monitor goes once its root is cleaned up, or after its grace.
  tsrun(['run', '-d', '--network', 'none', '--name', 'keep', '--rootfs', rootfs, '--', 'sleep', '100000']);
  for (let i = 0; i < N + 2; i++) {
    const a = time(TSRUN, ['run', '-d', '--network', 'none', '--rootfs', rootfs, '--', 'sleep', '100000'], tEnv);
    tsrun(['rm', '-f', a.out]);
    let b;
    if (havePodman) {
      b = time('podman', ['run', '-d', '--network', 'none', 'bench-busybox', 'sleep', '100000'], pEnv);
      spawnSync('podman', ['rm', '-f', '-t', '0', b.out], { env: pEnv, stdio: 'ignore' });
    }
    if (i < 2) continue;
    rd.tsrun.push(a.ms);
    if (b) rd.podman.push(b.ms);
  }
  tsrun(['rm', '-f', 'keep']);
  if (havePodman) spawnSync('podman', ['rmi', '-a', '-f'], { env: pEnv, stdio: 'ignore' });

  console.log(row('tsrun exec C true', ex.tsrun));
  console.log(row('podman exec C true', ex.podman));
  console.log(row('tsrun run -d (monitor starts: cold)', rd.tsrunCold));
  console.log(row('tsrun run -d (monitor lingering: again)', rd.tsrunAgain));
  console.log(row('tsrun run -d (monitor up: warm)', rd.tsrun));
  console.log(row('podman run -d --network none', rd.podman));
  if (havePodman) {
    console.log(`ratio exec  tsrun/podman: ${(median(ex.tsrun) / median(ex.podman)).toFixed(2)}x`);
    console.log(`ratio run-d tsrun/podman: ${(median(rd.tsrun) / median(rd.podman)).toFixed(2)}x warm, ${(median(rd.tsrunAgain) / median(rd.podman)).toFixed(2)}x again, ${(median(rd.tsrunCold) / median(rd.podman)).toFixed(2)}x cold`);
  }
} finally {
  cleanup();
}
