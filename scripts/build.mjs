// Bundles the CLI and the setup worker into plain CommonJS under dist/.
// Why a bundle: Node's start-up is the floor of every tsrun command, and resolving
// and reading dozens of module files costs several milliseconds on the run path.
// koffi is kept external: it is a native addon loaded from node_modules.
import fs from 'node:fs';
import { build } from 'esbuild';

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
  // The OCI runtime face gets its own small bundle: no image or engine code on its path.
  bundle('src/cli/runtime-main.ts', 'dist/tsrun-runtime.cjs'),
]);
