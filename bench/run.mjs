#!/usr/bin/env node
// Start-up benchmark: `tsrun run --rootfs DIR -- true` against `runc run` of the same
// busybox rootfs, and against the floor every tsrun command pays, a bare `node -e 0`.
//
// Plain JavaScript on purpose: `npm run bench` must not need a TypeScript loader, and
// the bench must not load anything that could skew the timings of its children.
//
// The three commands run interleaved (A B C A B C ...), so that machine noise on this
// shared 2-core box (other engineers' tests, page cache, CPU frequency) lands on all of
// them alike instead of on whichever ran during a burst.
//
// Environment: BENCH_N (measured rounds, default 30), BENCH_WARMUP (default 3),
// BENCH_TRACE=0 to skip the one traced run at the end.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO, TSRUN, busyboxRootfs, fail, intEnv, mountsUnder, which } from './lib.mjs';

const TARGET_RATIO = 10; // the goal: tsrun run <= 10x runc run

const N = intEnv('BENCH_N', 30, 1);
const WARMUP = intEnv('BENCH_WARMUP', 3, 0);
const TRACE = process.env.BENCH_TRACE !== '0';


// --- preconditions ----------------------------------------------------------------

if (process.getuid?.() !== 0) fail('run as root: both tsrun and runc create namespaces and mounts');
if (!existsSync(join(REPO, 'dist', 'tsrun.cjs'))) fail('dist/tsrun.cjs is missing', 'npm run build');
const RUNC = which('runc');
if (!RUNC) process.stderr.write('bench: runc not found; measuring tsrun and the node floor only (apt-get install runc)\n');

// --- fixtures (all under one temp dir, removed at exit) ---------------------------

const work = mkdtempSync(join(tmpdir(), 'tsrun-bench-'));
const rootfs = join(work, 'rootfs');
const bundle = join(work, 'bundle');
const tsrunRoot = join(work, 'tsrun-root');
const runcRoot = join(work, 'runc-state');
// runc puts a container in a cgroup. A relative cgroupsPath (and the default) is taken
// relative to runc's own cgroup, which on these machines is a memory cgroup owned by the
// machine's managers; an absolute, unique name keeps runc out of cgroups we did not make,
// and lets the leak check below find exactly ours.
const cgPrefix = `tsrun-bench-${process.pid}-`;
const runcIds = new Set();
let cleaned = false;

function cleanup() {
  if (cleaned) return;
  cleaned = true;
  if (RUNC && existsSync(runcRoot)) {
    for (const id of runcIds) {
      spawnSync(RUNC, ['--root', runcRoot, 'delete', '-f', id], { stdio: 'ignore' });
    }
  }
  killProcessesMentioning(work);
  removeCgroups(cgPrefix);
  // rm -rf follows no symlinks but does cross mount points: a bind mount left under the
  // temp dir (for instance of the host's /) would have its contents deleted. Detach
  // anything mounted there first, and refuse to delete if that did not work.
  for (const m of mountsUnder(work).reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  const left = mountsUnder(work);
  if (left.length) {
    process.stderr.write(`bench: not removing ${work}: still mounted: ${left.join(', ')}\n`);
    return;
  }
  rmSync(work, { recursive: true, force: true });
}


function killProcessesMentioning(dir) {
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent) || Number(ent) === process.pid) continue;
    let cmd;
    try {
      cmd = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.includes(dir)) {
      try {
        process.kill(Number(ent), 'SIGKILL');
      } catch { /* already gone */ }
    }
  }
}

function removeCgroups(prefix) {
  const base = '/sys/fs/cgroup';
  let hierarchies = [];
  try {
    hierarchies = readdirSync(base);
  } catch {
    return;
  }
  for (const h of hierarchies) {
    let entries;
    try {
      entries = readdirSync(join(base, h));
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.startsWith(prefix)) continue;
      try {
        rmdirSync(join(base, h, e));
      } catch (err) {
        process.stderr.write(`bench: cannot remove cgroup ${join(base, h, e)}: ${err.message}\n`);
      }
    }
  }
}

process.on('exit', cleanup);
// The measured loop awaits each child, so a signal is seen between two runs: the run in
// flight finishes (it is short), then the loop stops and cleanup() removes what it made.
let interrupted = null;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => (interrupted = sig));


function buildRuncBundle() {
  mkdirSync(bundle);
  const r = spawnSync(RUNC, ['spec'], { cwd: bundle, encoding: 'utf8' });
  if (r.status !== 0) fail(`runc spec failed: ${r.stderr}`);
  const cfg = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  cfg.process.args = ['true'];
  cfg.process.terminal = false;
  cfg.root = { path: rootfs, readonly: true };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(cfg, null, 2));
}

// --- the three commands -------------------------------------------------------------

let runcSeq = 0;
const subjects = [
  {
    name: 'tsrun run',
    cmd: () => [TSRUN, ['run', '--rootfs', rootfs, '--', 'true']],
    env: { TSRUN_ROOT: tsrunRoot },
  },
  ...(RUNC
    ? [{
        name: 'runc run',
        cmd: () => {
          const id = `${cgPrefix}${runcSeq++}`;
          runcIds.add(id);
          // One config with a fixed cgroupsPath would make every run share one cgroup;
          // rewriting config.json per run costs the bench, not runc, so it is outside
          // the timed span (see time()).
          return [RUNC, ['--root', runcRoot, 'run', '--bundle', bundle, id], id];
        },
        before: (id) => {
          const cfgPath = join(bundle, 'config.json');
          const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
          cfg.linux.cgroupsPath = `/${id}`;
          writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
        },
        after: (id) => {
          // `runc run` in the foreground deletes its container when it exits; this
          // catches one that did not (a failed start leaves state behind).
          if (existsSync(join(runcRoot, id))) spawnSync(RUNC, ['--root', runcRoot, 'delete', '-f', id], { stdio: 'ignore' });
          runcIds.delete(id);
        },
      }]
    : []),
  {
    name: 'node -e 0',
    cmd: () => [process.execPath, ['-e', '0']],
  },
];

// Wall time from spawn() until the child has exited and closed its output, the same
// span a shell user waits for.
function spawnTimed(file, args, env) {
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(file, args, { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const err = [];
    child.stdout.resume();
    child.stderr.on('data', (b) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    let error;
    child.on('error', (e) => (error = e));
    child.on('close', (status, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      done({ ms, status, signal, error, stderr: Buffer.concat(err).toString() });
    });
  });
}

async function time(s) {
  const [file, args, id] = s.cmd();
  s.before?.(id);
  const r = await spawnTimed(file, args, { ...process.env, ...s.env });
  const ms = r.ms;
  s.after?.(id);
  if (r.error || r.status !== 0) {
    // A failed run is not a timing: it is counted and reported, and the bench exits 1
    // at the end, so an intermittent failure is visible without losing the figures.
    const why = r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit ${r.status}`;
    s.failures = (s.failures ?? 0) + 1;
    s.firstFailure ??= `${why}: ${file} ${args.join(' ')}\n${r.stderr.trim()}`;
    return null;
  }
  return ms;
}

// --- stats and output ------------------------------------------------------------

function percentile(sorted, p) {
  if (sorted.length === 1) return sorted[0];
  const i = (sorted.length - 1) * p;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { median: percentile(s, 0.5), p10: percentile(s, 0.1), p90: percentile(s, 0.9), min: s[0], max: s[s.length - 1] };
}

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r, i) => {
      const line = r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('   ');
      return i === 0 ? `${line}\n${'-'.repeat(line.length)}` : line;
    })
    .join('\n');
}

const f1 = (x) => x.toFixed(1);

// One traced run, to say where tsrun's own time goes. --trace=json is the same event
// stream as --trace=timing, in a form this script can add up.
function traceSummary() {
  const env = { ...process.env, TSRUN_ROOT: tsrunRoot };
  const t0 = performance.now();
  const r = spawnSync(TSRUN, ['--trace=json', 'run', '--rootfs', rootfs, '--', 'true'], { cwd: work, env, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
  const wall = performance.now() - t0;
  if (r.status !== 0) return `traced run failed (exit ${r.status}):\n${r.stderr}`;
  const events = [];
  for (const line of r.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      events.push(JSON.parse(line));
    } catch { /* not an event */ }
  }
  if (!events.length) return 'the traced run printed no events';
  const byGroup = new Map();
  for (const e of events) {
    const k = `${e.thread} ${e.kind}`;
    const g = byGroup.get(k) ?? { n: 0, ms: 0 };
    g.n++;
    g.ms += e.ms;
    byGroup.set(k, g);
  }
  const mainAt = events.filter((e) => e.thread === 'main').map((e) => e.at);
  const lines = [
    `one traced run (tsrun --trace=json run --rootfs DIR -- true): ${f1(wall)} ms wall, ${events.length} events`,
  ];
  if (mainAt.length) {
    lines.push(`  main thread: first event ${f1(Math.min(...mainAt))} ms, last ${f1(Math.max(...mainAt))} ms after the CLI bundle loaded;`);
    lines.push('  the rest of the wall time is Node start-up, module loading and exit');
  }
  lines.push('  by thread and kind (steps on main enclose the setup thread\'s syscalls):');
  for (const [k, g] of [...byGroup].sort((a, b) => b[1].ms - a[1].ms)) {
    lines.push(`    ${k.padEnd(16)} ${String(g.n).padStart(4)} events ${f1(g.ms).padStart(8)} ms`);
  }
  lines.push('  slowest events:');
  for (const e of [...events].sort((a, b) => b.ms - a.ms).slice(0, 8)) {
    const line = `    ${e.ms.toFixed(2).padStart(8)} ms  ${e.thread.padEnd(5)} ${e.kind.padEnd(7)} ${e.name}  # ${e.why}`;
    lines.push(line.length > 160 ? `${line.slice(0, 159)}…` : line);
  }
  return lines.join('\n');
}

// --- main --------------------------------------------------------------------------

busyboxRootfs(rootfs);
if (RUNC) buildRuncBundle();

process.stdout.write(`bench: ${N} rounds (+${WARMUP} warm-up), interleaved: ${subjects.map((s) => s.name).join(', ')}\n`);
const samples = new Map(subjects.map((s) => [s.name, []]));
for (let round = 0; round < WARMUP + N; round++) {
  for (const s of subjects) {
    const ms = await time(s);
    if (interrupted) {
      process.stderr.write(`bench: ${interrupted}: stopped after ${round} rounds\n`);
      process.exit(128 + constants.signals[interrupted]);
    }
    if (round >= WARMUP && ms !== null) samples.get(s.name).push(ms);
    // a command that never works (a stale build, a missing dependency) is not noise
    if (round >= 2 && s.failures === round + 1) fail(`${s.name} failed ${round + 1} times in a row; the first:\n${s.firstFailure}`);
  }
}

const stats = new Map([...samples].filter(([, v]) => v.length > 0).map(([k, v]) => [k, summarize(v)]));
const rows = [['command (wall ms)', 'n', 'median', 'p10', 'p90', 'min', 'max']];
for (const [name, st] of stats) {
  rows.push([name, String(samples.get(name).length), f1(st.median), f1(st.p10), f1(st.p90), f1(st.min), f1(st.max)]);
}
process.stdout.write(`\n${table(rows)}\n\n`);
const failed = subjects.filter((s) => s.failures);
for (const s of failed) {
  process.stdout.write(`FAILED: ${s.name}: ${s.failures} of ${WARMUP + N} runs (warm-ups included); the first:\n  ${s.firstFailure.replace(/\n/g, '\n  ')}\n\n`);
}
if (failed.length) process.exitCode = 1;

const ts = stats.get('tsrun run')?.median;
const floor = stats.get('node -e 0')?.median;
const runc = stats.get('runc run')?.median;
if (ts === undefined || floor === undefined) fail('no successful tsrun or node run to compare');
if (runc !== undefined) {
  const ratio = ts / runc;
  process.stdout.write(`tsrun/runc       ${ratio.toFixed(1)}x   (target <= ${TARGET_RATIO}x: ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'})\n`);
}
process.stdout.write(`tsrun/node-floor ${(ts / floor).toFixed(1)}x   (tsrun above the floor: ${f1(ts - floor)} ms)\n`);
process.stdout.write(`node ${process.version}, ${RUNC ? spawnSync(RUNC, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] : 'no runc'}, tsrun rootfs read-write, runc rootfs read-only\n`);

if (TRACE) process.stdout.write(`\n${traceSummary()}\n`);
cleanup();
