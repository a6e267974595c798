'use strict';
// Loads a dist/ bundle through V8's code cache. Start-up is the floor of every tsrun
// command, and compiling ~700 KB of JavaScript is a measurable part of it (about
// 20 ms of a ~200 ms `tsrun run` here). The cache is written after the first run, so
// it also holds the functions that run compiled lazily. V8 rejects a cache that does
// not match the source or the Node version (cachedDataRejected), and it is rewritten.
// A cache that cannot be read or written (not root, read-only install) only costs the
// compile.
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const Module = require('module');

function saveCache(script, cacheFile) {
  try {
    const tmp = `${cacheFile}.${process.pid}.${require('worker_threads').threadId}`;
    fs.writeFileSync(tmp, script.createCachedData());
    fs.renameSync(tmp, cacheFile);
  } catch {
    /* best effort */
  }
}

/**
 * Compiles and runs `file` as a CommonJS module with `cacheFile` as its code cache.
 * `saveAt` says when a missing or stale cache is written: 'exit' (the main thread: by
 * then it holds every function the command ran), or 'now' (the setup thread: it later
 * pivots into the container's root and drops its credentials, so it must write before).
 */
function runCached(file, cacheFile, saveAt) {
  const source = fs.readFileSync(file, 'utf8');
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  const stale = !cachedData || script.cachedDataRejected;
  if (stale && saveAt === 'exit') process.once('exit', () => saveCache(script, cacheFile));
  const mod = { exports: {}, filename: file, id: file, loaded: false, children: [], paths: [] };
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
  if (stale && saveAt === 'now') saveCache(script, cacheFile);
}

/**
 * koffi's native addon, directly: koffi's index.js first loads crypto, https and zlib for
 * its build tools (~7 ms). src/linux/libc.ts loads it the same way (and so shares it).
 */
function loadKoffi() {
  const triplet = process.platform === 'linux' ? { x64: 'linux_x64', arm64: 'linux_arm64' }[process.arch] : undefined;
  if (triplet) {
    try {
      return require(`koffi/build/koffi/${triplet}/koffi.node`);
    } catch {
      /* the index knows where it is */
    }
  }
  return require('koffi');
}

/**
 * Starts the setup thread (dist/setup-worker.cjs, through bin/load-setup-worker.cjs)
 * before the bundle is even read. A worker's own start (a V8 isolate and Node's
 * bootstrap, ~25 ms here) is on the critical path of a container start: begun from
 * inside the bundle it could only start once the whole bundle had been evaluated. On 2
 * cores it now boots while this thread compiles and evaluates the bundle.
 * src/runtime/launcher.ts adopts it, or retires it when the command launches nothing.
 */
function startSetupWorker() {
  const { Worker } = require('worker_threads');
  // koffi registers its native addon once per thread, and two threads doing it at the
  // same moment crashed Node now and then (launcher.ts). The worker waits on this flag
  // before it loads koffi, so this thread's load (~7 ms) overlaps the worker's boot
  // instead of delaying its start.
  const koffiGate = new Int32Array(new SharedArrayBuffer(4));
  // The constructor creates the thread before it returns, and only this thread creates
  // threads: the one new task is the worker's (launcher.ts moves it into the container's
  // v1 cgroups while it boots).
  const before = fs.readdirSync('/proc/self/task');
  const worker = new Worker(path.join(__dirname, 'load-setup-worker.cjs'), { workerData: { koffiGate: koffiGate.buffer }, stdout: false, stderr: false });
  const born = fs.readdirSync('/proc/self/task').filter((t) => !before.includes(t));
  try {
    loadKoffi();
  } finally {
    Atomics.store(koffiGate, 0, 1);
    Atomics.notify(koffiGate, 0);
  }
  // The listener is attached now, so 'ready' cannot be missed however long the bundle takes.
  const ready = new Promise((resolve) => {
    worker.on('message', (m) => m && m.t === 'ready' && resolve());
    worker.once('exit', () => resolve());
    worker.once('error', () => resolve());
  });
  worker.unref();
  globalThis[Symbol.for('tsrun.setupWorker')] = { worker, ready, tid: born.length === 1 ? Number(born[0]) : 0 };
}

function loadBundle(file, opts = {}) {
  if (opts.setupWorker) startSetupWorker();
  // `run` (and a runtime's create/run) is the hot path and compiles different functions
  // from every other verb: it gets its own cache.
  const hot = process.argv.includes('run') || process.argv.includes('create');
  runCached(file, `${file}.${hot ? 'run' : 'other'}.v8cache`, 'exit');
}

module.exports = loadBundle;
module.exports.runCached = runCached;
