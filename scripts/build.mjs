// Bundles the CLI and the setup worker into plain CommonJS under dist/.
// Why a bundle: Node's start-up is the floor of every tsrun command, and resolving
// and reading dozens of module files costs several milliseconds on the run path.
// koffi is kept external: it is a native addon loaded from node_modules.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { build } from 'esbuild';

const require = createRequire(import.meta.url);

// Node built-ins that Node's own start-up does not load. A bundle's ESM imports all run
// when it is evaluated, so every verb paid for crypto, child_process (which pulls in net
// and dgram), worker_threads, tty, ... whether it used them or not: 4-6 ms of a ~75 ms
// `tsrun-runtime start`. Each is replaced by a stand-in whose properties load the real
// module on first use. The property names are the build machine's Node's; the bundle is
// built and run by the same Node (package.json "engines", .ci/run builds before testing).
const LAZY_BUILTINS = ['child_process', 'crypto', 'dgram', 'dns', 'fs/promises', 'http', 'https', 'net', 'os', 'readline', 'stream', 'tls', 'tty', 'worker_threads', 'zlib'];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join('|')})$`);
    // The stand-in's own require of the module stays a plain require.
    b.onResolve({ filter }, (a) => (a.namespace === 'lazy-builtin' ? { path: a.path, external: true } : { path: a.path.replace(/^node:/, ''), namespace: 'lazy-builtin' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (a) => ({
      loader: 'js',
      contents: `let m;\nconst load = () => (m ??= require(${JSON.stringify(`node:${a.path}`)}));\n`
        + `for (const k of ${JSON.stringify(Object.keys(require(a.path)))}) Object.defineProperty(exports, k, { get: () => load()[k], enumerable: true });\n`,
    }));
  },
};

fs.mkdirSync('dist', { recursive: true });

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  external: ['koffi'],
  logLevel: 'warning',
  legalComments: 'none',
  plugins: [lazyBuiltins],
};

// Code caches of the previous build would only be rejected; drop them (bin/load-bundle.cjs).
for (const f of fs.readdirSync('dist', { withFileTypes: true })) if (f.name.endsWith('.v8cache')) fs.rmSync(`dist/${f.name}`);

// Each bundle is written next to its place and renamed over it, so a tsrun that
// starts during a build reads the old bundle or the new one, never half of one.
async function bundle(entry, outfile) {
  const r = await build({ ...common, entryPoints: [entry], outfile, write: false });
  for (const f of r.outputFiles) {
    const tmp = `${f.path}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, f.contents);
    fs.renameSync(tmp, f.path);
  }
}

await Promise.all([
  bundle('src/cli/main.ts', 'dist/tsrun.cjs'),
  bundle('src/runtime/setup-worker.ts', 'dist/setup-worker.cjs'),
  bundle('src/image/unpack-worker.ts', 'dist/unpack-worker.cjs'),
  // The OCI runtime face gets its own small bundle: no image or engine code on its path.
  bundle('src/cli/runtime-main.ts', 'dist/tsrun-runtime.cjs'),
]);
