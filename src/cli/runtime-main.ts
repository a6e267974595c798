// tsrun-runtime: the OCI runtime face of tsrun, speaking runc's command line so that
// Podman (through conmon), containerd and CRI-O can drive it. Same runtime core as
// `tsrun run`; this file only parses, prints and picks exit codes (1 on error, as runc).
import { appendFileSync, readFileSync } from 'node:fs';
import { CAPABILITIES } from '../security/capabilities.js';
import type { Resources } from '../cgroups/types.js';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { TsrunError } from '../errors.js';
import { LinuxKernel } from '../linux/libc.js';
import { retireUnusedWorker } from '../runtime/launcher.js';
import { processesInPidns } from '../runtime/proc-scan.js';
import {
  containerCgroup, createContainer, deleteContainer, execInContainer, killContainer, pauseContainer, listContainers, loadRecord, ociState, startContainer, statusOf,
} from '../runtime/lifecycle.js';
import { runForeground } from '../runtime/run.js';
import type { Paths } from '../runtime/state.js';
import { defaultSpec } from '../spec/defaults.js';
import { validateSpec } from '../spec/validate.js';
import { tracer, parseTraceMode } from '../trace/tracer.js';
import { parseSignal } from './signals.js';
import { normalizeArgv } from './argv.js';

interface Globals {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug?: boolean;
  systemdCgroup?: boolean;
  trace?: string;
}

const k = new LinuxKernel();
let globals: Globals = { root: '/run/tsrun-runtime', logFormat: 'text' };

function paths(): Paths {
  return { root: globals.root, runRoot: globals.root };
}

function loadBundle(bundle: string): { spec: ReturnType<typeof validateSpec>; rootfs: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(resolve(bundle, 'config.json'), 'utf8'));
  } catch (e) {
    throw new TsrunError('SPEC_INVALID', `cannot read ${resolve(bundle, 'config.json')}: ${(e as Error).message}`);
  }
  const spec = validateSpec(raw);
  if (!spec.process) throw new TsrunError('SPEC_INVALID', 'invalid OCI spec: process: required');
  return { spec, rootfs: resolve(bundle, spec.root?.path ?? 'rootfs') };
}

/** Errors go to stderr, and with --log to that file (JSON lines with --log-format json), as runc does. */
function report(e: unknown): number {
  const msg = e instanceof TsrunError ? e.message : e instanceof Error ? (globals.debug ? e.stack ?? e.message : e.message) : String(e);
  if (globals.log) {
    const line = globals.logFormat === 'json'
      ? JSON.stringify({ level: 'error', msg, time: new Date().toISOString() })
      : `time="${new Date().toISOString()}" level=error msg="${msg.replace(/"/g, '\\"')}"`;
    try {
      appendFileSync(globals.log, line + '\n');
    } catch {
      /* the log is best effort; stderr still has it */
    }
  }
  process.stderr.write(`tsrun-runtime: ${msg}\n`);
  if (e instanceof TsrunError && e.hint) process.stderr.write(`hint: ${e.hint}\n`);
  return 1;
}

const collectInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new TsrunError('USAGE', `expected a non-negative integer, got "${v}"`);
  return n;
};

function build(): Command {
  const program = new Command('tsrun-runtime')
    .description('an OCI runtime with runc\'s command line, over the tsrun core')
    .version('0.1.0')
    .enablePositionalOptions()
    .option('--root <dir>', 'state directory', '/run/tsrun-runtime')
    .option('--log <file>', 'append errors to this file')
    .option('--log-format <format>', 'text or json', 'text')
    .option('--debug', 'more detail in errors')
    .option('--systemd-cgroup', 'use systemd for cgroups (cgroupsPath is slice:prefix:name)')
    .option('--trace [mode]', 'narrate every kernel step on stderr: text, json or timing')
    .hook('preAction', (cmd) => {
      globals = cmd.opts<Globals>();
      if (globals.logFormat !== 'text' && globals.logFormat !== 'json') throw new TsrunError('USAGE', `--log-format takes text or json, not "${globals.logFormat}"`);
      tracer.configure(parseTraceMode(globals.trace === undefined ? undefined : globals.trace === 'true' ? true : globals.trace));
      if (globals.systemdCgroup) {
        let systemd = false;
        try {
          systemd = readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd';
        } catch {
          /* no proc */
        }
        if (!systemd) throw new TsrunError('USAGE', '--systemd-cgroup needs systemd as PID 1, and this host does not run it', { hint: 'drop --systemd-cgroup (use cgroupfs)' });
        throw new TsrunError('USAGE', '--systemd-cgroup is not supported yet', { hint: 'use the cgroupfs manager' });
      }
    });

  program
    .command('create')
    .description('create a container: everything is set up, and the process waits before its command runs')
    .option('-b, --bundle <dir>', 'the bundle directory', '.')
    .option('--pid-file <file>', 'write the container process id here')
    .option('--console-socket <path>', 'unix socket that receives the pty master (process.terminal)')
    .option('--no-pivot', 'accepted for compatibility; tsrun always uses pivot_root')
    .option('--preserve-fds <n>', 'pass fds 3..3+n-1 to the container', collectInt, 0)
    .argument('<id>')
    .action(async (id: string, o: { bundle: string; pidFile?: string; consoleSocket?: string; preserveFds: number }) => {
      const bundle = resolve(o.bundle);
      const { spec, rootfs } = loadBundle(bundle);
      await createContainer(k, { id, spec, bundle, rootfs, paths: paths(), consoleSocket: o.consoleSocket, pidFile: o.pidFile && resolve(o.pidFile), preserveFds: o.preserveFds });
      // The setup thread is still inside posix_spawn (vfork) with the waiting child;
      // Node's normal exit would wait for it forever. Leave at once.
      k.exitNow(0);
    });

  program
    .command('start')
    .description('run the command of a created container')
    .argument('<id>')
    .action((id: string) => startContainer(k, paths(), id));

  program
    .command('state')
    .description('print the container\'s state as runtime-spec State JSON')
    .argument('<id>')
    .action((id: string) => {
      const r = loadRecord(paths(), id);
      process.stdout.write(JSON.stringify(ociState(paths(), r), null, 2) + '\n');
    });

  program
    .command('kill')
    .description('send a signal (default SIGTERM) to the container\'s process')
    .option('-a, --all', 'send it to every process in the container')
    .argument('<id>')
    .argument('[signal]', 'name (with or without SIG) or number', 'SIGTERM')
    .action((id: string, signal: string, o: { all?: boolean }) => killContainer(k, paths(), id, parseSignal(signal), !!o.all));

  program
    .command('delete')
    .description('delete a stopped (or, with --force, any) container')
    .option('-f, --force', 'kill it first if it is running')
    .argument('<id>')
    .action((id: string, o: { force?: boolean }) => deleteContainer(k, paths(), id, !!o.force));

  program
    .command('run')
    .description('create and start a container, and wait for it (with -d, do not wait)')
    .option('-b, --bundle <dir>', 'the bundle directory', '.')
    .option('--pid-file <file>', 'write the container process id here')
    .option('--console-socket <path>', 'unix socket that receives the pty master')
    .option('-d, --detach', 'do not wait for the container')
    .option('--no-pivot', 'accepted for compatibility')
    .option('--preserve-fds <n>', 'pass fds 3..3+n-1 to the container', collectInt, 0)
    .argument('<id>')
    .action(async (id: string, o: { bundle: string; pidFile?: string; consoleSocket?: string; detach?: boolean; preserveFds: number }) => {
      const bundle = resolve(o.bundle);
      const { spec, rootfs } = loadBundle(bundle);
      if (o.detach) {
        await createContainer(k, { id, spec, bundle, rootfs, paths: paths(), consoleSocket: o.consoleSocket, pidFile: o.pidFile && resolve(o.pidFile), preserveFds: o.preserveFds });
        startContainer(k, paths(), id);
        k.exitNow(0);
      }
      process.exitCode = (await runForeground(k, { id, spec, rootfs, bundle, paths: paths(), interactive: true, preserveFds: o.preserveFds })).code;
    });

  program
    .command('list')
    .description('list containers')
    .option('-f, --format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'only ids')
    .action((o: { format: string; quiet?: boolean }) => {
      const rows = listContainers(paths()).map((r) => ({ r, s: ociState(paths(), r) }));
      if (o.quiet) {
        for (const { r } of rows) process.stdout.write(r.id + '\n');
      } else if (o.format === 'json') {
        process.stdout.write(JSON.stringify(rows.map(({ r, s }) => ({ ociVersion: s.ociVersion, id: r.id, pid: s.pid, status: s.status, bundle: r.bundle, rootfs: r.rootfs, created: r.created, owner: 'root' }))) + '\n');
      } else {
        const lines = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'], ...rows.map(({ r, s }) => [r.id, String(s.pid), s.status, r.bundle, r.created, 'root'])];
        const w = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
        for (const l of lines) process.stdout.write(l.map((c, i) => c.padEnd(w[i]! + 3)).join('').trimEnd() + '\n');
      }
    });

  program
    .command('spec')
    .description('print a default config.json')
    .option('--rootless', 'a spec for rootless containers')
    .option('-b, --bundle <dir>', 'ignored: the spec goes to stdout')
    .action((o: { rootless?: boolean }) => {
      if (o.rootless) throw new TsrunError('USAGE', 'rootless containers are not supported: tsrun cannot enter a user namespace from multi-threaded Node');
      process.stdout.write(JSON.stringify(defaultSpec(), null, 2) + '\n');
    });

  program
    .command('features')
    .description('print what this runtime supports (runtime-spec features.md)')
    .action(() => {
      process.stdout.write(JSON.stringify({
        ociVersionMin: '1.0.0',
        ociVersionMax: '1.2.0',
        hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
        mountOptions: ['ro', 'rw', 'nosuid', 'suid', 'nodev', 'dev', 'noexec', 'exec', 'bind', 'rbind', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'relatime', 'noatime', 'strictatime', 'nodiratime'],
        linux: {
          namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts'],
          capabilities: Object.keys(CAPABILITIES),
          cgroup: { v1: true, v2: true, systemd: false, systemdUser: false },
          apparmor: { enabled: false },
          selinux: { enabled: false },
        },
        annotations: { 'org.opencontainers.runtime-spec.features.runtime': 'tsrun-runtime' },
      }, null, 2) + '\n');
    });

  program
    .command('ps')
    .description('list the processes of a container')
    .option('-f, --format <format>', 'table or json', 'table')
    .argument('<id>')
    .action((id: string, o: { format: string }) => {
      const r = loadRecord(paths(), id);
      if (statusOf(paths(), r) === 'stopped') throw new TsrunError('STATE', `container "${id}" is not running`);
      const pids = processesInPidns(r.pid);
      if (o.format === 'json') process.stdout.write(JSON.stringify(pids) + '\n');
      else {
        process.stdout.write('PID   CMD\n');
        for (const p of pids) process.stdout.write(`${String(p).padEnd(6)}${cmdline(p)}\n`);
      }
    });

  program
    .command('exec')
    .description('run another process in a running container')
    .passThroughOptions()
    .option('-p, --process <file>', 'the process as runtime-spec process JSON')
    .option('-d, --detach', 'do not wait for it')
    .option('--pid-file <file>', 'write its process id here')
    .option('-t, --tty', 'give it a terminal')
    .option('--console-socket <path>', 'unix socket that receives the pty master')
    .option('--cwd <dir>', 'working directory')
    .option('-e, --env <KEY=VALUE>', 'an environment variable', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('-u, --user <uid[:gid]>', 'user to run as')
    .option('--cap <cap>', 'an extra capability', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--no-new-privs', 'set no_new_privs')
    .option('--preserve-fds <n>', 'accepted for compatibility', collectInt, 0)
    .argument('<id>')
    .argument('[command...]')
    .action(async (id: string, command: string[], o: { process?: string; detach?: boolean; pidFile?: string; tty?: boolean; consoleSocket?: string; cwd?: string; env: string[]; user?: string; cap: string[]; newPrivs?: boolean }) => {
      const r = loadRecord(paths(), id);
      let proc: NonNullable<typeof r.spec.process>;
      if (o.process) {
        const raw = JSON.parse(readFileSync(o.process, 'utf8')) as unknown;
        proc = validateSpec({ ociVersion: r.spec.ociVersion, process: raw }).process!;
      } else {
        if (command.length === 0) throw new TsrunError('USAGE', 'exec needs a command, or --process FILE');
        const base = r.spec.process!;
        const [uid, gid] = (o.user ?? '').split(':');
        const caps = o.cap.map((c) => (c.toUpperCase().startsWith('CAP_') ? c.toUpperCase() : `CAP_${c.toUpperCase()}`));
        const withCaps = (l?: string[]): string[] => [...new Set([...(l ?? []), ...caps])];
        proc = {
          ...base,
          args: command,
          terminal: !!o.tty,
          cwd: o.cwd ?? base.cwd,
          env: [...(base.env ?? []), ...o.env],
          user: o.user ? { uid: Number(uid), gid: gid !== undefined ? Number(gid) : Number(uid) } : base.user,
          noNewPrivileges: o.newPrivs === false ? true : base.noNewPrivileges,
          capabilities: caps.length ? { ...base.capabilities, bounding: withCaps(base.capabilities?.bounding), effective: withCaps(base.capabilities?.effective), permitted: withCaps(base.capabilities?.permitted) } : base.capabilities,
        };
      }
      const res = await execInContainer(k, paths(), id, { process: proc, detach: !!o.detach, pidFile: o.pidFile && resolve(o.pidFile), consoleSocket: o.consoleSocket, interactive: true });
      if (res.exit) process.exitCode = await res.exit;
    });

  program
    .command('update')
    .description('change the resource limits of a running container')
    .option('-r, --resources <file>', 'linux.resources JSON (- for stdin)')
    .option('--memory <bytes>', 'memory limit', Number)
    .option('--memory-reservation <bytes>', 'memory soft limit', Number)
    .option('--memory-swap <bytes>', 'memory plus swap limit', Number)
    .option('--cpu-period <us>', 'CPU CFS period', Number)
    .option('--cpu-quota <us>', 'CPU CFS quota', Number)
    .option('--cpu-share <shares>', 'CPU shares', Number)
    .option('--cpuset-cpus <list>', 'CPUs allowed')
    .option('--cpuset-mems <list>', 'memory nodes allowed')
    .option('--pids-limit <n>', 'maximum number of tasks', Number)
    .option('--blkio-weight <w>', 'block IO weight', Number)
    .argument('<id>')
    .action((id: string, o: Record<string, string | number | undefined>) => {
      const r = loadRecord(paths(), id);
      if (statusOf(paths(), r) === 'stopped') throw new TsrunError('STATE', `container "${id}" is not running`);
      let res: Resources;
      if (o.resources) res = JSON.parse(readFileSync(o.resources === '-' ? 0 : String(o.resources), 'utf8')) as Resources;
      else {
        const num = (v: unknown): number | undefined => (typeof v === 'number' && !Number.isNaN(v) ? v : undefined);
        const drop = <T extends object>(x: T): T | undefined => (Object.values(x).some((v) => v !== undefined) ? x : undefined);
        res = {
          memory: drop({ limit: num(o.memory), reservation: num(o.memoryReservation), swap: num(o.memorySwap) }),
          cpu: drop({ period: num(o.cpuPeriod), quota: num(o.cpuQuota), shares: num(o.cpuShare), cpus: o.cpusetCpus as string | undefined, mems: o.cpusetMems as string | undefined }),
          pids: drop({ limit: num(o.pidsLimit) }),
          blockIO: drop({ weight: num(o.blkioWeight) }),
        };
      }
      const m = containerCgroup(k, r);
      if (!m) throw new TsrunError('CGROUP', `container "${id}" has no cgroup to update`);
      m.apply(res);
    });

  program
    .command('events')
    .description('print the container\'s resource usage (with --stats, once)')
    .option('--stats', 'print one stats event and exit')
    .option('--interval <seconds>', 'seconds between stats events', Number, 5)
    .argument('<id>')
    .action(async (id: string, o: { stats?: boolean; interval: number }) => {
      const emit = (): boolean => {
        const r = loadRecord(paths(), id);
        const m = statusOf(paths(), r) === 'stopped' ? null : containerCgroup(k, r);
        if (!m) return false;
        const s = m.stats();
        process.stdout.write(JSON.stringify({
          type: 'stats', id,
          data: {
            cpu: { usage: { total: s.cpuUsageNs } },
            memory: { usage: { usage: s.memoryUsage, limit: s.memoryLimit ?? 0 }, oomKills: s.oomKills },
            pids: { current: s.pidsCurrent, limit: s.pidsLimit ?? 0 },
            blkio: { read: s.blkioRead, write: s.blkioWrite },
          },
        }) + '\n');
        return true;
      };
      if (!emit()) throw new TsrunError('STATE', `container "${id}" is not running`);
      if (o.stats) return;
      while (emit()) await new Promise((r) => setTimeout(r, o.interval * 1000));
    });

  program
    .command('pause')
    .description('freeze every process of the container (cgroup freezer)')
    .argument('<id>')
    .action((id: string) => pauseContainer(k, paths(), id, true));

  program
    .command('resume')
    .description('thaw a paused container')
    .argument('<id>')
    .action((id: string) => pauseContainer(k, paths(), id, false));

  return program;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

async function main(): Promise<void> {
  const program = build();
  program.exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
    process.exit(1);
  });
  try {
    await program.parseAsync(normalizeArgv(process.argv));
  } catch (e) {
    process.exitCode = report(e);
  } finally {
    await retireUnusedWorker();
  }
}

void main();
