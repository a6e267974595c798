#!/usr/bin/env node
// Image benchmark: cold `tsrun pull` of a multi-layer image vs `podman pull` from the
// same local registry (Debian's docker-registry on 127.0.0.1), and a warm
// `tsrun run --rm --network none IMAGE true` vs `podman run --rm --network none IMAGE true`
// (plus tsrun's default bridge network, for reference).
// Prints medians and the ratios (targets: pull <= 0.5x podman, run <= 0.75x podman).
//
//   npm run build && sudo node bench/image.mjs      (BENCH_N=10 rounds by default)
//
// The image and the registry come from the test helpers (bench/lib.mjs bundles them), so
// the bench and the tests share them. Podman has its own temp config and storage
// (lib.mjs podmanEnv).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TSRUN, havePodman as podmanInstalled, intEnv, median, podmanEnv as podmanConfig, requireRoot, row, testHelpers, timeSync, unmountUnder } from './lib.mjs';

const N = intEnv('BENCH_N', 10, 1);
requireRoot('containers need namespaces and mounts');

const work = mkdtempSync(join(tmpdir(), 'tsrun-bench-image-'));
let registry;
const cleanup = async () => {
  try {
    await registry?.stop();
  } finally {
    // podman's overlay storage may hold mounts under work
    if (unmountUnder(work)) rmSync(work, { recursive: true, force: true });
    else process.stderr.write(`bench: not removing ${work}: something is still mounted there\n`);
  }
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

const time = (cmd, args, env = {}) => timeSync(cmd, args, env).ms;

try {
  const { buildImage, busyboxTarFiles, startRegistry } = await testHelpers(work, ['images', 'registry']);
  registry = await startRegistry();
  // busybox plus 6 layers of 2 MB incompressible data and a few small files each
  const layers = [busyboxTarFiles()];
  for (let i = 0; i < 6; i++) {
    layers.push([
      { name: `data${i}/`, type: 'directory' },
      { name: `data${i}/blob`, content: randomBytes(2 << 20) },
      ...Array.from({ length: 50 }, (_, j) => ({ name: `data${i}/f${j}`, content: `file ${i}/${j}\n` })),
    ]);
  }
  const image = await buildImage({ layers });
  await registry.push('bench/multi', 'latest', image);
  const ref = `${registry.host}/bench/multi:latest`;
  const size = image.layers.reduce((s, l) => s + l.data.length, 0);
  console.log(`image: ${ref}, ${image.layers.length} layers, ${(size / 1e6).toFixed(1)} MB compressed`);

  // podman: its own configuration and storage per root
  const podmanEnv = (root) => podmanConfig(root, { insecureRegistry: registry.host, netns: 'none' });
  const havePodman = podmanInstalled();
  if (!havePodman) console.log('podman not installed: its rows are left out (apt-get install podman)');

  // cold pull: a fresh store for each round, interleaved
  const pull = { tsrun: [], podman: [] };
  for (let i = 0; i < N; i++) {
    const t = join(work, `tsrun-pull-${i}`);
    pull.tsrun.push(time(TSRUN, ['pull', '-q', ref], { TSRUN_ROOT: t }));
    rmSync(t, { recursive: true, force: true });
    if (havePodman) {
      const p = join(work, `podman-pull-${i}`);
      const env = podmanEnv(p);
      pull.podman.push(time('podman', ['pull', '-q', ref], env));
      spawnSync('podman', ['rmi', '-a', '-f'], { env: { ...process.env, ...env }, stdio: 'ignore' });
      if (unmountUnder(p)) rmSync(p, { recursive: true, force: true });
    }
  }

  // warm run: image already pulled, fresh container each time
  const tRoot = join(work, 'tsrun-warm');
  execFileSync(TSRUN, ['pull', '-q', ref], { env: { ...process.env, TSRUN_ROOT: tRoot }, stdio: 'ignore' });
  const pRoot = join(work, 'podman-warm');
  const pEnv = podmanEnv(pRoot);
  if (havePodman) execFileSync('podman', ['pull', '-q', ref], { env: { ...process.env, ...pEnv }, stdio: 'ignore' });
  // podman runs with --network none, so the compared tsrun row does too; tsrun's default
  // (a bridge network, like docker's) is shown beside it.
  const run = { tsrun: [], tsrunNet: [], podman: [] };
  for (let i = 0; i < N + 2; i++) {
    const a = time(TSRUN, ['run', '--rm', '--network', 'none', ref, 'true'], { TSRUN_ROOT: tRoot });
    const n = time(TSRUN, ['run', '--rm', ref, 'true'], { TSRUN_ROOT: tRoot });
    const b = havePodman ? time('podman', ['run', '--rm', '--network', 'none', ref, 'true'], pEnv) : undefined;
    if (i < 2) continue; // warm-up
    run.tsrun.push(a);
    run.tsrunNet.push(n);
    if (b !== undefined) run.podman.push(b);
  }
  if (havePodman) spawnSync('podman', ['rmi', '-a', '-f'], { env: { ...process.env, ...pEnv }, stdio: 'ignore' });

  console.log(row('tsrun pull (cold)', pull.tsrun));
  console.log(row('podman pull (cold)', pull.podman));
  console.log(row('tsrun run --rm --network none (warm)', run.tsrun));
  console.log(row('tsrun run --rm IMAGE true (bridge)', run.tsrunNet));
  console.log(row('podman run --rm --network none (warm)', run.podman));
  if (havePodman) {
    const pr = median(pull.tsrun) / median(pull.podman);
    const rr = median(run.tsrun) / median(run.podman);
    console.log(`pull ratio tsrun/podman: ${pr.toFixed(2)}x (target <= 0.5x) ${pr <= 0.5 ? 'OK' : 'MISSED'}`);
    console.log(`run  ratio tsrun/podman: ${rr.toFixed(2)}x (target <= 0.75x) ${rr <= 0.75 ? 'OK' : 'MISSED'}`);
  }
} finally {
  await cleanup();
}
