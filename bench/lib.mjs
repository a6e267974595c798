// What the benches share: paths, environment knobs, statistics, timing a command, the
// busybox rootfs, podman's private configuration, the test helpers (bundled), and the
// clean-up of mounts under a bench's temp dir.
//
// Plain JavaScript on purpose: a bench must not need a TypeScript loader, and must load
// nothing that could skew the timings of its children.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const TSRUN = join(REPO, 'bin', 'tsrun');
export const RUNTIME = join(REPO, 'bin', 'tsrun-runtime');
export const BUSYBOX = '/usr/bin/busybox';

export function fail(msg, hint) {
  process.stderr.write(`bench: ${msg}\n${hint ? `hint: ${hint}\n` : ''}`);
  process.exit(1);
}

/** An integer from the environment, at least `min`; the bench stops on anything else. */
export function intEnv(name, dflt, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) fail(`${name} must be an integer >= ${min}, not "${raw}"`);
  return n;
}

export function requireRoot(why) {
  if (process.getuid?.() !== 0) fail(`run as root: ${why}`);
}

export function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

export function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The p-quantile (0..1) by nearest rank. */
/** One result line: the label, the median in ms, then min, max and count. */
export function row(name, xs, width = 40) {
  const f = (v) => v.toFixed(1);
  return `${name.padEnd(width)} ${xs.length ? f(median(xs)).padStart(8) + ' ms' : '      n/a'}  (min ${xs.length ? f(Math.min(...xs)) : '-'}, max ${xs.length ? f(Math.max(...xs)) : '-'}, n=${xs.length})`;
}

export function quantile(xs, p) {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))] : NaN;
}

/**
 * Runs a command to its end and returns its wall time in ms and its stdout. Throws with
 * its stderr when it fails. stdout and stderr are pipes: do not use it for a command that
 * leaves a process holding them (a runtime's `create`).
 */
export function timeSync(cmd, args, env = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { ms, out: r.stdout.trim() };
}

/**
 * A root filesystem of one static busybox under `dir`: bin/busybox plus a link per
 * applet in `applets` ('all': every applet busybox lists), /etc/passwd and /etc/group.
 */
export function busyboxRootfs(dir, applets = 'all') {
  if (!existsSync(BUSYBOX)) fail(`${BUSYBOX} is missing`, 'apt-get install busybox-static');
  for (const d of ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp', 'root']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  let names = applets;
  if (applets === 'all') {
    const list = spawnSync(BUSYBOX, ['--list'], { encoding: 'utf8' });
    if (list.status !== 0) fail(`busybox --list failed: ${list.stderr}`);
    names = list.stdout.split('\n');
  }
  for (const name of names) {
    // --list names busybox itself; a bin/busybox -> busybox link would replace the binary
    if (!name || name === 'busybox' || name.includes('/')) continue;
    symlinkSync('busybox', join(dir, 'bin', name));
  }
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\n');
  return dir;
}

export const havePodman = () => spawnSync('podman', ['--version'], { stdio: 'ignore' }).status === 0;

/**
 * Environment for a podman with its own temp configuration and storage under `dir`:
 * cgroupfs manager (no systemd here), runc (crun refuses this host's hybrid cgroups), a
 * file event log, and ulimits it can set (runc cannot raise RLIMIT_NOFILE above the hard
 * limit it inherits here: EPERM). `insecureRegistry` (host:port) may be pulled over HTTP.
 */
export function podmanEnv(dir, { insecureRegistry, netns } = {}) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'containers.conf'), '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n'
    + `[containers]\n${netns ? `netns = "${netns}"\n` : ''}default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n`);
  writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${join(dir, 'graph')}"\nrunroot = "${join(dir, 'run')}"\n`);
  const env = { CONTAINERS_CONF: join(dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf') };
  if (insecureRegistry) {
    writeFileSync(join(dir, 'registries.conf'), `unqualified-search-registries = []\n[[registry]]\nlocation = "${insecureRegistry}"\ninsecure = true\n`);
    env.CONTAINERS_REGISTRIES_CONF = join(dir, 'registries.conf');
  }
  return env;
}

/**
 * The test helpers (TypeScript under test/helpers), bundled with esbuild into `work` and
 * imported, so that a bench builds images and runs registries exactly as the tests do.
 */
export async function testHelpers(work, modules = ['images', 'registry', 'rootfs']) {
  const { build } = await import('esbuild');
  const out = join(work, 'helpers.mjs');
  await build({
    stdin: { contents: modules.map((m) => `export * from './test/helpers/${m}.ts';`).join('\n'), resolveDir: REPO, loader: 'ts' },
    bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'warning',
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  return import(pathToFileURL(out).href);
}

/** Mount points at or under `dir`, in mount order (unmount them reversed). */
export function mountsUnder(dir) {
  const out = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    // mountinfo escapes space, tab, newline and backslash as octal
    const path = mp?.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (path && (path === dir || path.startsWith(dir + '/'))) out.push(path);
  }
  return out;
}

/**
 * Detaches everything mounted under `dir` (podman's overlay storage, a container's
 * leftovers) and says whether anything is still there. rm -rf follows no symlinks but
 * does cross mount points: never remove a bench dir while this returns false.
 */
export function unmountUnder(dir) {
  for (const m of mountsUnder(dir).reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  return mountsUnder(dir).length === 0;
}
