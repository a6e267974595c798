// Debian's podman, isolated in a temp dir, driving bin/tsrun-runtime through conmon.
//
// Isolation is by CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (graphroot, runroot,
// tmp_dir, events file, network config all under the dir), so the host's podman state
// is never read or written. Facts this setup lives with (checked on podman 4.3):
// - root here lacks CAP_SYS_RESOURCE, so rlimits above the caller's hard limit fail;
//   podman also lowers the runtime's nproc hard limit to 32768. default_ulimits keeps
//   what podman asks for within reach.
// - conmon runs `podman container cleanup` as its exit command with CONTAINERS_CONF but
//   *without* CONTAINERS_STORAGE_CONF, passing --root/--runroot on its command line.
//   podman then places its database (static_dir) under that --root, so static_dir must
//   be left to its default: set elsewhere, the cleanup finds "no such container" and
//   `run --rm` stalls for conmon's 20 s timeout.
// - The runtime is named by its path (--runtime PATH), which the exit command repeats.
// - conmon 2.1 runs in podman's cwd and, when the container's memory cgroup reports an
//   OOM kill, creates a file named "oom" there; podman 4.3 does not read it back here
//   (State.OOMKilled stays false with runc too). podman runs in DIR so the marker lands
//   in the test's temp dir, where a test can read it.
import { execFileSync } from 'node:child_process';
import { commandsRun } from './commands.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { RUNTIME_BIN } from './bundle.js';

export interface PodmanResult {
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
  timedOut: boolean;
  command: string;
}

export interface Podman {
  dir: string;
  env: Record<string, string>;
  /** `podman --runtime tsrun-runtime ARGS...` */
  run(args: string[], o?: { timeoutMs?: number; input?: string | Buffer }): Promise<PodmanResult>;
  /** the shell command line for the same (for tmux) */
  shellCommand(args: string[]): string;
  /** imports a rootfs dir as IMAGE (podman import of its tar) */
  importRootfs(rootfs: string, image: string): Promise<void>;
  /** removes every container and all storage */
  destroy(): Promise<void>;
}

export function podmanInstalled(): boolean {
  return commandsRun(['podman', '--version'], ['conmon', '--version']);
}

export function makePodman(dir: string): Podman {
  for (const d of ['storage', 'run', 'tmp', 'net']) mkdirSync(join(dir, d), { recursive: true });
  const conf = join(dir, 'containers.conf');
  const storage = join(dir, 'storage.conf');
  writeFileSync(conf, [
    '[containers]',
    'default_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]',
    '[network]',
    `network_config_dir = "${join(dir, 'net')}"`,
    '[engine]',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = "${join(dir, 'events.log')}"`,
    `tmp_dir = "${join(dir, 'tmp')}"`,
    '[engine.runtimes]',
    `tsrun = ["${RUNTIME_BIN}"]`,
    '',
  ].join('\n'));
  writeFileSync(storage, ['[storage]', 'driver = "vfs"', `graphroot = "${join(dir, 'storage')}"`, `runroot = "${join(dir, 'run')}"`, ''].join('\n'));
  const env = { CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage, CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf') };
  writeFileSync(env.CONTAINERS_REGISTRIES_CONF, 'unqualified-search-registries = []\n');
  const base = ['--runtime', RUNTIME_BIN];

  const p: Podman = {
    dir,
    env,
    async run(args, o = {}) {
      const r = await execa('podman', [...base, ...args], {
        // conmon inherits podman's cwd and writes its "oom" marker there (see the OOM test)
        cwd: dir, reject: false, env, extendEnv: true, timeout: o.timeoutMs ?? 60_000, forceKillAfterDelay: 2000, stripFinalNewline: false,
        ...(o.input !== undefined ? { input: o.input } : { stdin: 'ignore' }),
      });
      return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode, timedOut: r.timedOut === true, command: ['podman', ...base, ...args].join(' ') };
    },
    shellCommand(args) {
      const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
      return [...Object.entries(env).map(([k, v]) => `${k}=${q(v)}`), ...['podman', ...base, ...args].map(q)].join(' ');
    },
    async importRootfs(rootfs, image) {
      const tar = execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 256 * 1024 * 1024 });
      const r = await p.run(['import', '-', image], { input: tar });
      if (r.exitCode !== 0) throw new Error(`podman import failed: ${r.stderr}`);
    },
    async destroy() {
      await p.run(['rm', '--all', '--force', '--time', '0']);
      await p.run(['system', 'reset', '--force']);
    },
  };
  return p;
}
