#!/usr/bin/env node
// Image benchmark: cold `tsrun pull` of a multi-layer image vs `podman pull` from the
// same local registry (Debian's docker-registry on 127.0.0.1), and a warm
// `tsrun run --rm --network none IMAGE true` vs `podman run --rm --network none IMAGE true`
// (plus tsrun's default bridge network, for reference).
// Prints medians and the ratios (targets: pull <= 0.5x podman, run <= 0.75x podman).
//
//   npm run build && sudo node bench/image.mjs      (BENCH_N=10 rounds by default)
//
// The test helpers that build the image and run the registry are TypeScript; they are
// bundled with esbuild into a temp dir at start, so the bench and the tests share them.
// Podman runs with its own temp config: cgroupfs manager (no systemd here), runc (crun
// refuses this host's hybrid cgroups), file event log, and its own storage.
import { build } from 'esbuild';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const N = Number(process.env.BENCH_N ?? 10);
const TSRUN = join(REPO, 'bin/tsrun');

if (process.getuid() !== 0) {
  console.error('bench/image.mjs: run as root (containers need namespaces and mounts)');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'tsrun-bench-image-'));
let registry;
const cleanup = async () => {
  try {
    await registry?.stop();
  } finally {
    // podman's overlay storage may hold mounts under work
    spawnSync('sh', ['-c', `grep -o " ${work}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function time(cmd, args, env = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

try {
  const helpers = join(work, 'helpers.mjs');
  await build({
    stdin: { contents: "export * from './test/helpers/images.ts'; export * from './test/helpers/registry.ts';", resolveDir: REPO, loader: 'ts' },
    bundle: true, platform: 'node', format: 'esm', outfile: helpers, logLevel: 'warning',
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  const { buildImage, busyboxTarFiles, startRegistry } = await import(pathToFileURL(helpers).href);
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

  // podman's temp configuration
  const pc = join(work, 'podman');
  mkdirSync(pc, { recursive: true });
  writeFileSync(join(pc, 'containers.conf'), `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n[containers]\nnetns = "none"\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n`);
  writeFileSync(join(pc, 'registries.conf'), `unqualified-search-registries = []\n[[registry]]\nlocation = "${registry.host}"\ninsecure = true\n`);
  const podmanEnv = (root) => {
    writeFileSync(join(root, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${join(root, 'graph')}"\nrunroot = "${join(root, 'run')}"\n`);
    return { CONTAINERS_CONF: join(pc, 'containers.conf'), CONTAINERS_REGISTRIES_CONF: join(pc, 'registries.conf'), CONTAINERS_STORAGE_CONF: join(root, 'storage.conf') };
  };
  const havePodman = spawnSync('podman', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!havePodman) console.log('podman not installed: its rows are left out (apt-get install podman)');

  // cold pull: a fresh store for each round, interleaved
  const pull = { tsrun: [], podman: [] };
  for (let i = 0; i < N; i++) {
    const t = join(work, `tsrun-pull-${i}`);
    pull.tsrun.push(time(TSRUN, ['pull', '-q', ref], { TSRUN_ROOT: t }));
    rmSync(t, { recursive: true, force: true });
    if (havePodman) {
      const p = join(work, `podman-pull-${i}`);
      mkdirSync(p);
      const env = podmanEnv(p);
      pull.podman.push(time('podman', ['pull', '-q', ref], env));
      spawnSync('podman', ['rmi', '-a', '-f'], { env: { ...process.env, ...env }, stdio: 'ignore' });
      spawnSync('sh', ['-c', `grep -o " ${p}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`], { stdio: 'ignore' });
      rmSync(p, { recursive: true, force: true });
    }
  }

  // warm run: image already pulled, fresh container each time
  const tRoot = join(work, 'tsrun-warm');
  execFileSync(TSRUN, ['pull', '-q', ref], { env: { ...process.env, TSRUN_ROOT: tRoot }, stdio: 'ignore' });
  const pRoot = join(work, 'podman-warm');
  mkdirSync(pRoot);
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

  const row = (name, a) => `${name.padEnd(34)} ${a.length ? median(a).toFixed(1).padStart(8) + ' ms' : '      n/a'}  (min ${a.length ? Math.min(...a).toFixed(1) : '-'}, max ${a.length ? Math.max(...a).toFixed(1) : '-'}, n=${a.length})`;
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
