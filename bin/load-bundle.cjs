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

module.exports = function loadBundle(file) {
  // `run` (and a runtime's create/run) is the hot path and compiles different functions
  // from every other verb: it gets its own cache.
  const hot = process.argv.includes('run') || process.argv.includes('create');
  const cacheFile = `${file}.${hot ? 'run' : 'other'}.v8cache`;
  const source = fs.readFileSync(file, 'utf8');
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  if (!cachedData || script.cachedDataRejected) {
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}`;
        fs.writeFileSync(tmp, script.createCachedData());
        fs.renameSync(tmp, cacheFile);
      } catch {
        /* best effort */
      }
    });
  }
  const mod = { exports: {}, filename: file, id: file, loaded: false, children: [], paths: [] };
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
};
