#!/usr/bin/env node
// Network benchmark: `tsrun run --rm --rootfs ROOTFS true` on tsrun's default bridge
// network vs `podman run --rm --rootfs ROOTFS true` on podman's default network
// (netavark's bridge here), as a ratio; plus both with --network none, so the cost the
// network setup adds to each is visible (bridge minus none).
//
//   npm run build && sudo node bench/network.mjs      (BENCH_N=10 rounds by default)
//
// Both run the same busybox rootfs directory (built at start from busybox-static), so
// no image store is involved. Podman gets a temp config: cgroupfs manager (no systemd),
// runc (crun refuses this host's hybrid cgroups), file event log, its own storage.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, timeSync } from './lib.mjs';

const time = (cmd, args, env = {}) => timeSync(cmd, args, env).ms;

const REPO = fileURLToPath(new URL('..', import.meta.url));
const N = Number(process.env.BENCH_N ?? 10);
const TSRUN = join(REPO, 'bin/tsrun');

if (process.getuid() !== 0) {
  console.error('bench/network.mjs: run as root (containers need namespaces, bridges and nftables)');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'tsrun-bench-net-'));
const cleanup = () => {
  spawnSync('sh', ['-c', `grep -o " ${work}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});



try {
  const rootfs = join(work, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const a of ['sh', 'true', 'ip']) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const tRoot = join(work, 'tsrun');

  const pc = join(work, 'podman');
  mkdirSync(pc, { recursive: true });
  writeFileSync(join(pc, 'containers.conf'), '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n[containers]\n# runc cannot raise RLIMIT_NOFILE above the hard limit it inherits here (EPERM)\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n');
  writeFileSync(join(pc, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${join(pc, 'graph')}"\nrunroot = "${join(pc, 'run')}"\n`);
  const pEnv = { CONTAINERS_CONF: join(pc, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(pc, 'storage.conf') };
  const havePodman = spawnSync('podman', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!havePodman) console.log('podman not installed: its rows are left out (apt-get install podman)');

  const r = { tsrunBridge: [], tsrunNone: [], podmanBridge: [], podmanNone: [] };
  for (let i = 0; i < N + 2; i++) {
    const a = time(TSRUN, ['run', '--rm', '--rootfs', rootfs, 'true'], { TSRUN_ROOT: tRoot });
    const b = time(TSRUN, ['run', '--rm', '--network', 'none', '--rootfs', rootfs, 'true'], { TSRUN_ROOT: tRoot });
    const c = havePodman ? time('podman', ['run', '--rm', '--rootfs', rootfs, 'true'], pEnv) : undefined;
    const d = havePodman ? time('podman', ['run', '--rm', '--network', 'none', '--rootfs', rootfs, 'true'], pEnv) : undefined;
    if (i < 2) continue; // warm-up
    r.tsrunBridge.push(a);
    r.tsrunNone.push(b);
    if (c !== undefined) r.podmanBridge.push(c);
    if (d !== undefined) r.podmanNone.push(d);
  }

  // Where tsrun's network time goes: the `net` steps of one traced run.
  const tr = spawnSync(TSRUN, ['--trace', 'json', 'run', '--rm', '--rootfs', rootfs, 'true'], { env: { ...process.env, TSRUN_ROOT: tRoot }, encoding: 'utf8' });
  const steps = tr.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((e) => e.kind === 'net');

  const row = (name, a) => `${name.padEnd(44)} ${a.length ? median(a).toFixed(1).padStart(8) + ' ms' : '      n/a'}  (min ${a.length ? Math.min(...a).toFixed(1) : '-'}, max ${a.length ? Math.max(...a).toFixed(1) : '-'}, n=${a.length})`;
  console.log(row('tsrun run --rm ROOTFS true (bridge)', r.tsrunBridge));
  console.log(row('tsrun run --rm --network none ROOTFS true', r.tsrunNone));
  console.log(row('podman run --rm --rootfs ROOTFS true (default)', r.podmanBridge));
  console.log(row('podman run --rm --network none --rootfs ROOTFS', r.podmanNone));
  console.log(`tsrun: the bridge network adds ${(median(r.tsrunBridge) - median(r.tsrunNone)).toFixed(1)} ms (median bridge - median none)`);
  if (havePodman) {
    console.log(`podman: its default network adds ${(median(r.podmanBridge) - median(r.podmanNone)).toFixed(1)} ms`);
    console.log(`ratio tsrun/podman, default networks: ${(median(r.tsrunBridge) / median(r.podmanBridge)).toFixed(2)}x`);
  }
  console.log('tsrun net steps of one traced run (ms):');
  for (const e of steps) console.log(`  ${e.ms.toFixed(1).padStart(7)}  ${e.name}(${e.args.slice(0, 70).replace(/\n/g, ' ')})`);
  console.log(`  ${steps.reduce((s, e) => s + e.ms, 0).toFixed(1).padStart(7)}  total`);
} finally {
  cleanup();
}
