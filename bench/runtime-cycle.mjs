#!/usr/bin/env node
// The OCI runtime cycle an engine pays per container: `create; start; delete -f` of a
// busybox bundle running `true`, for bin/tsrun-runtime and runc side by side, and the
// cycle's floor: as many bare `node -e 0` starts as the cycle has Node processes (one
// per verb: create, start, delete = 3; tsrun has no separate init process, the setup
// runs on a worker thread of `create`). Issue 8's target: tsrun within 1.25x of that
// floor. runc's cycle (Go, no interpreter start) is out of reach and shown for scale.
//
// The three are interleaved (tsrun, runc, floor, tsrun, ...) so that noise on this shared
// machine lands on all alike. Each verb's stdio is /dev/null: a pipe would be held open
// by the created container until it exits, as with runc.
//
// Environment: BENCH_N (measured rounds, default 20), BENCH_WARMUP (default 2).
// Exit status 1 when a run failed (the first error is printed) or a precondition is missing.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO, RUNTIME, busyboxRootfs, fail, intEnv, quantile as q, requireRoot } from './lib.mjs';

const TARGET = 1.25;
const N = intEnv('BENCH_N', 20, 1);
const WARMUP = intEnv('BENCH_WARMUP', 2, 0);

requireRoot('both runtimes create namespaces and mounts');
if (!existsSync(join(REPO, 'dist', 'tsrun-runtime.cjs'))) fail('dist/tsrun-runtime.cjs is missing', 'npm run build');
const RUNC = spawnSync('runc', ['--version']).status === 0 ? 'runc' : null;
if (!RUNC) process.stderr.write('bench: runc not found; measuring tsrun-runtime and the floor only (apt-get install runc)\n');

// --- a bundle per runtime on one busybox rootfs ------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'tsrun-bench-cycle-'));
const rootfs = busyboxRootfs(join(dir, 'rootfs'), ['true', 'sh']);

function bundle(name, specJson, edit) {
  const b = join(dir, name);
  mkdirSync(b);
  const spec = JSON.parse(specJson);
  spec.root = { path: rootfs, readonly: true };
  spec.process.args = ['true'];
  spec.process.terminal = false;
  edit?.(spec);
  writeFileSync(join(b, 'config.json'), JSON.stringify(spec));
  return b;
}
const tsrunSpec = spawnSync(RUNTIME, ['spec'], { encoding: 'utf8' });
if (tsrunSpec.status !== 0) fail(`tsrun-runtime spec failed: ${tsrunSpec.stderr}`);
const tsrunBundle = bundle('tsrun-bundle', tsrunSpec.stdout);
let runcBundle = null;
if (RUNC) {
  // `runc spec` writes ./config.json: run it in a scratch dir
  const scratch = join(dir, 'runc-spec');
  mkdirSync(scratch);
  const r = spawnSync(RUNC, ['spec'], { cwd: scratch, encoding: 'utf8' });
  if (r.status !== 0) fail(`runc spec failed: ${r.stderr}`);
  runcBundle = bundle('runc-bundle', readFileSync(join(scratch, 'config.json'), 'utf8'));
}
const tsrunRoot = join(dir, 'tsrun-state');
const runcRoot = join(dir, 'runc-state');

// --- timing ------------------------------------------------------------------------
function run(cmd, args) {
  return new Promise((res) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('error', (e) => res({ code: -1, err: e.message }));
    // 'exit', not 'close': stderr may be held by a created container (it is not here, but
    // a hung pipe must never stall the bench)
    c.on('exit', (code, sig) => res({ code: code ?? 128, err: err || (sig ? `killed by ${sig}` : '') }));
  });
}

let seq = 0;
const failures = [];
// per-verb wall times of the measured rounds, to show which verb is above its one Node start
const verbTimes = { 'tsrun-runtime': { create: [], start: [], delete: [] }, runc: { create: [], start: [], delete: [] } };
let measuring = false;
async function cycle(bin, root, bundleDir, label) {
  const id = `bench-${process.pid}-${++seq}`;
  const t0 = performance.now();
  for (const args of [['create', '--bundle', bundleDir, id], ['start', id], ['delete', '--force', id]]) {
    const v0 = performance.now();
    const r = await run(bin, ['--root', root, ...args]);
    if (measuring) verbTimes[label][args[0]].push(performance.now() - v0);
    if (r.code !== 0) {
      failures.push(`${label} ${args[0]}: exit ${r.code}: ${r.err.trim().split('\n')[0]}`);
      await run(bin, ['--root', root, 'delete', '--force', id]);
      return null;
    }
  }
  return performance.now() - t0;
}
async function floor() {
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) {
    const r = await run(process.execPath, ['-e', '0']);
    if (r.code !== 0) {
      failures.push(`node -e 0: ${r.err}`);
      return null;
    }
  }
  return performance.now() - t0;
}

function cleanUp() {
  for (const [bin, root] of [[RUNTIME, tsrunRoot], ...(RUNC ? [[RUNC, runcRoot]] : [])]) {
    const cdir = bin === RUNTIME ? join(root, 'containers') : root;
    let ids = [];
    try {
      ids = readdirSync(cdir).filter((e) => e.startsWith('bench-'));
    } catch {
      /* never created */
    }
    for (const id of ids) spawnSync(bin, ['--root', root, 'delete', '--force', id], { stdio: 'ignore' });
  }
  rmSync(dir, { recursive: true, force: true });
}
let stopping = false;
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => (stopping = true));

const rows = { 'tsrun-runtime': [], runc: [], 'node -e 0 x3': [] };
try {
  for (let i = 0; i < WARMUP + N && !stopping; i++) {
    measuring = i >= WARMUP;
    const a = await cycle(RUNTIME, tsrunRoot, tsrunBundle, 'tsrun-runtime');
    const b = RUNC ? await cycle(RUNC, runcRoot, runcBundle, 'runc') : null;
    const c = await floor();
    if (i < WARMUP) continue;
    if (a !== null) rows['tsrun-runtime'].push(a);
    if (b !== null) rows.runc.push(b);
    if (c !== null) rows['node -e 0 x3'].push(c);
  }
} finally {
  cleanUp();
}

// --- report ------------------------------------------------------------------------
const f = (x) => (Number.isFinite(x) ? x.toFixed(1).padStart(8) : '       -');
process.stdout.write(`create; start; delete -f of a busybox bundle running true (N=${N}, warm-up ${WARMUP}, interleaved), ms\n`);
process.stdout.write(`${'cycle'.padEnd(16)}${'median'.padStart(8)}${'p10'.padStart(8)}${'p90'.padStart(8)}${'min'.padStart(8)}${'max'.padStart(8)}   n\n`);
for (const [name, xs] of Object.entries(rows)) {
  if (!xs.length) continue;
  process.stdout.write(`${name.padEnd(16)}${f(q(xs, 0.5))}${f(q(xs, 0.1))}${f(q(xs, 0.9))}${f(Math.min(...xs))}${f(Math.max(...xs))}   ${xs.length}\n`);
}
const oneNode = q(rows['node -e 0 x3'], 0.5) / 3;
process.stdout.write(`\nper verb, median ms (one node start is ~${oneNode.toFixed(1)} ms of the floor)\n`);
for (const [name, verbs] of Object.entries(verbTimes)) {
  if (!verbs.create.length) continue;
  process.stdout.write(`${name.padEnd(16)}${Object.entries(verbs).map(([v, xs]) => `${v} ${q(xs, 0.5).toFixed(1)}`).join('   ')}\n`);
}
const med = (k) => q(rows[k], 0.5);
if (rows.runc.length) process.stdout.write(`\ntsrun-runtime / runc:              ${(med('tsrun-runtime') / med('runc')).toFixed(2)}x\n`);
const vsFloor = med('tsrun-runtime') / med('node -e 0 x3');
process.stdout.write(`tsrun-runtime / node floor (x3):   ${vsFloor.toFixed(2)}x  (target <= ${TARGET}x: ${vsFloor <= TARGET ? 'met' : 'NOT met'})\n`);
process.stdout.write(`tsrun-runtime above the floor:     ${(med('tsrun-runtime') - med('node -e 0 x3')).toFixed(1)} ms per cycle\n`);
if (failures.length) {
  process.stderr.write(`\n${failures.length} run(s) failed; first: ${failures[0]}\n`);
  process.exit(1);
}
