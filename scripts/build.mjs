// Bundles the CLI and the setup worker into plain CommonJS under dist/.
// Why a bundle: Node's start-up is the floor of every tsrun command, and resolving
// and reading dozens of module files costs several milliseconds on the run path.
// koffi is kept external: it is a native addon loaded from node_modules.
import { build } from 'esbuild';

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

await Promise.all([
  build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/tsrun.cjs' }),
  build({ ...common, entryPoints: ['src/runtime/setup-worker.ts'], outfile: 'dist/setup-worker.cjs' }),
  // The OCI runtime face gets its own small bundle: no image or engine code on its path.
  build({ ...common, entryPoints: ['src/cli/runtime-main.ts'], outfile: 'dist/tsrun-runtime.cjs' }),
]);
