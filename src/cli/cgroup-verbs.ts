// `tsrun info`, `tsrun stats` and `tsrun update`, plus the resource flags of `tsrun run`
// and the OOM notice after it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { release, totalmem } from 'node:os';
import type { Command } from 'commander';
import { TsrunError } from '../errors.js';
import { LinuxKernel } from '../linux/libc.js';
import { detectCgroups, type CgroupLayout } from '../cgroups/detect.js';
import { RESOURCE_OPTIONS, resourcesFromFlags, type ResourceFlags } from '../cgroups/flags.js';
import { cgroupManager } from '../cgroups/manager.js';
import type { CgroupStats } from '../cgroups/types.js';
import { isAlive } from '../runtime/proc-scan.js';
import { containersDir, readState, resolvePaths, type RuntimeState } from '../runtime/state.js';
import type { GlobalOptions } from './main.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function addResourceOptions(cmd: Command): Command {
  for (const [flags, desc, repeat] of RESOURCE_OPTIONS) {
    if (repeat) cmd.option(flags, desc, collect, []);
    else cmd.option(flags, desc);
  }
  return cmd;
}

/** Registers info, stats and update, and gives `run` and `create` their resource flags. */
export function registerCgroupVerbs(program: Command): void {
  for (const c of program.commands) if (c.name() === 'run' || c.name() === 'create') addResourceOptions(c);

  program
    .command('info')
    .description('show the cgroup mode, the controllers and the kernel features tsrun relies on')
    .option('--format <format>', 'text or json', 'text')
    .action((opts: { format: string }) => {
      const info = hostInfo();
      if (opts.format === 'json') process.stdout.write(JSON.stringify(info, null, 2) + '\n');
      else process.stdout.write(infoText(info));
    });

  program
    .command('stats')
    .description('show live resource usage of running containers')
    .argument('[containers...]', 'container ids (or unique prefixes); default: all running')
    .option('--no-stream', 'print one sample and exit')
    .option('--format <format>', 'table or json', 'table')
    .action(async (ids: string[], opts: { stream: boolean; format: string }, cmd: Command) => {
      const paths = resolvePaths(cmd.parent!.opts<GlobalOptions>().root);
      await stats(paths.runRoot, ids, opts.stream, opts.format);
    });

  addResourceOptions(
    program
      .command('update')
      .description('change the resource limits of running containers')
      .argument('<containers...>', 'container ids (or unique prefixes)'),
  ).action((ids: string[], opts: ResourceFlags, cmd: Command) => {
    const paths = resolvePaths(cmd.parent!.opts<GlobalOptions>().root);
    const res = resourcesFromFlags(opts, true);
    if (!res) throw new TsrunError('USAGE', 'update needs at least one limit to change', { hint: 'tsrun update --memory 512m CONTAINER' });
    const k = new LinuxKernel();
    for (const id of ids) {
      const s = findRunning(paths.runRoot, id);
      cgroupManager(k, s.cgroupsPath!).apply(res);
      process.stdout.write(`${s.id.slice(0, 12)}\n`);
    }
  });
}

// ---- info ----

interface HostInfo {
  kernel: string;
  cgroup: { mode: string; v2Mount: string | null; v2Controllers: string[]; v1Hierarchies: Record<string, string>; use: Record<string, string | null> };
  features: Record<string, { available: boolean; how: string }>;
}

function kernelAtLeast(major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release());
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

function cgroupKillAvailable(layout: CgroupLayout): { available: boolean; how: string } {
  if (!layout.v2) return { available: false, how: 'no cgroup2 mount' };
  // Only non-root cgroups have cgroup.kill: look at a child of the v2 root.
  try {
    for (const e of readdirSync(layout.v2.mount, { withFileTypes: true })) {
      if (e.isDirectory()) return { available: existsSync(join(layout.v2.mount, e.name, 'cgroup.kill')), how: `cgroup.kill in ${join(layout.v2.mount, e.name)}` };
    }
  } catch {
    /* fall through */
  }
  return { available: kernelAtLeast(5, 14), how: 'kernel >= 5.14' };
}

export function hostInfo(): HostInfo {
  const layout = detectCgroups();
  const filesystems = (() => {
    try {
      return readFileSync('/proc/filesystems', 'utf8');
    } catch {
      return '';
    }
  })();
  const features: HostInfo['features'] = {};
  const overlayLoaded = /\toverlay\n/.test(filesystems);
  features.overlay = {
    available: overlayLoaded || existsSync(`/lib/modules/${release()}/kernel/fs/overlayfs`),
    how: overlayLoaded ? '/proc/filesystems' : 'module in /lib/modules (loaded on first mount)',
  };
  for (const [ns, file] of [['pid', 'pid'], ['mount', 'mnt'], ['network', 'net'], ['ipc', 'ipc'], ['uts', 'uts'], ['user', 'user'], ['cgroup', 'cgroup'], ['time', 'time']] as const) {
    features[`namespace.${ns}`] = { available: existsSync(`/proc/self/ns/${file}`), how: `/proc/self/ns/${file}` };
  }
  features['cgroup.kill'] = cgroupKillAvailable(layout);
  features.pidfd = { available: kernelAtLeast(5, 3), how: 'pidfd_open(2): kernel >= 5.3' };
  features['procfs pidns='] = { available: kernelAtLeast(6, 15), how: 'mount option pidns= of procfs: kernel >= 6.15' };
  features.openat2 = { available: kernelAtLeast(5, 6), how: 'openat2(2): kernel >= 5.6' };
  features['new mount API'] = { available: kernelAtLeast(5, 2), how: 'fsopen/fsmount/move_mount: kernel >= 5.2' };
  return {
    kernel: release(),
    cgroup: {
      mode: layout.mode,
      v2Mount: layout.v2?.mount ?? null,
      v2Controllers: layout.v2?.controllers ?? [],
      v1Hierarchies: layout.v1,
      use: { ...layout.choice },
    },
    features,
  };
}

function infoText(i: HostInfo): string {
  const lines = [
    `Kernel: ${i.kernel}`,
    `Cgroup mode: ${i.cgroup.mode}${i.cgroup.mode === 'hybrid' ? ' (v2 for the controllers cgroup2 holds, v1 for the rest)' : ''}`,
    `Cgroup v2: ${i.cgroup.v2Mount ?? 'not mounted'}${i.cgroup.v2Mount ? ` (controllers: ${i.cgroup.v2Controllers.join(' ') || 'none'})` : ''}`,
    `Cgroup v1 hierarchies: ${Object.entries(i.cgroup.v1Hierarchies).map(([c, m]) => `${c}=${m}`).join(' ') || 'none'}`,
    'Controllers used:',
    ...Object.entries(i.cgroup.use).map(([c, v]) => `  ${c.padEnd(8)} ${v ?? 'unavailable'}`),
    'Kernel features:',
    ...Object.entries(i.features).map(([f, v]) => `  ${f.padEnd(18)} ${v.available ? 'yes' : 'no '}  (${v.how})`),
    'Security:',
    '  capabilities, seccomp (BPF built by tsrun), no_new_privs, masked and read-only paths, device cgroup or eBPF device program',
    '  AppArmor, SELinux: out of scope (no profiles or labels are applied; apparmor= and label= options are refused)',
    '  user namespaces: not supported (root in a container is root on the host, as in Docker\'s default mode)',
  ];
  return lines.join('\n') + '\n';
}

// ---- stats and update ----

function liveStates(runRoot: string): RuntimeState[] {
  let ids: string[];
  try {
    ids = readdirSync(containersDir({ root: '', runRoot }));
  } catch {
    return [];
  }
  const out: RuntimeState[] = [];
  for (const id of ids) {
    const s = readState(join(containersDir({ root: '', runRoot }), id));
    if (s?.pid && s.pidStart && s.cgroupsPath && isAlive(s.pid, s.pidStart)) out.push(s);
  }
  return out;
}

function findRunning(runRoot: string, idOrPrefix: string): RuntimeState {
  const hits = liveStates(runRoot).filter((s) => s.id === idOrPrefix || s.id.startsWith(idOrPrefix));
  if (hits.length === 0) throw new TsrunError('NO_SUCH_CONTAINER', `no running container ${idOrPrefix}`, { hint: 'tsrun stats --no-stream lists the running ones' });
  if (hits.length > 1) throw new TsrunError('USAGE', `${idOrPrefix} matches ${hits.length} containers: give more of the id`);
  return hits[0]!;
}

/** docker's units: binary for memory (MiB), decimal for block I/O (MB). */
export function binarySize(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${Number(n.toFixed(i === 0 ? 0 : 2))}${u[i]}`;
}

export function decimalSize(n: number): string {
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toFixed(i === 0 ? 0 : 3 - Math.floor(Math.log10(Math.max(n, 1)))))}${u[i]}`;
}

export interface StatsRow {
  ID: string;
  Container: string;
  Name: string;
  CPUPerc: string;
  MemUsage: string;
  MemPerc: string;
  NetIO: string;
  BlockIO: string;
  PIDs: string;
  /** the numbers behind the columns, straight from the cgroup */
  Cgroup: CgroupStats & { cpuPercent: number; memoryUsedNoCache: number };
}

export function statsRow(s: RuntimeState, a: CgroupStats, b: CgroupStats, wallNs: number): StatsRow {
  // CPU % as docker: cgroup CPU time over wall time, 100% per fully used CPU.
  const cpuPercent = wallNs > 0 ? ((b.cpuUsageNs - a.cpuUsageNs) / wallNs) * 100 : 0;
  // docker shows usage minus the inactive file cache, which the kernel can drop at will.
  const used = Math.max(0, b.memoryUsage - b.memoryInactiveFile);
  const limit = b.memoryLimit ?? totalmem();
  return {
    ID: s.id.slice(0, 12),
    Container: s.id.slice(0, 12),
    Name: s.id.slice(0, 12),
    CPUPerc: `${cpuPercent.toFixed(2)}%`,
    MemUsage: `${binarySize(used)} / ${binarySize(limit)}`,
    MemPerc: `${((used / limit) * 100).toFixed(2)}%`,
    NetIO: '-- / --',
    BlockIO: `${decimalSize(b.blkioRead)} / ${decimalSize(b.blkioWrite)}`,
    PIDs: String(b.pidsCurrent),
    Cgroup: { ...b, cpuPercent, memoryUsedNoCache: used },
  };
}

const COLUMNS: Array<[keyof StatsRow, string, number]> = [
  ['ID', 'CONTAINER ID', 14], ['Name', 'NAME', 14], ['CPUPerc', 'CPU %', 9], ['MemUsage', 'MEM USAGE / LIMIT', 22],
  ['MemPerc', 'MEM %', 9], ['NetIO', 'NET I/O', 11], ['BlockIO', 'BLOCK I/O', 17], ['PIDs', 'PIDS', 4],
];

function table(rows: StatsRow[]): string {
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(COLUMNS[i]![2] + 1))).join(' ').trimEnd();
  return [line(COLUMNS.map((c) => c[1])), ...rows.map((r) => line(COLUMNS.map((c) => String(r[c[0]]))))].join('\n') + '\n';
}

async function sample(runRoot: string, ids: string[]): Promise<StatsRow[]> {
  const k = new LinuxKernel();
  const states = ids.length ? ids.map((id) => findRunning(runRoot, id)) : liveStates(runRoot);
  const managers = states.map((s) => cgroupManager(k, s.cgroupsPath!));
  const read = (): Array<CgroupStats | null> =>
    managers.map((m) => {
      try {
        return m.stats();
      } catch {
        return null; // exited between listing and reading
      }
    });
  const t0 = process.hrtime.bigint();
  const first = read();
  // Two samples, as docker's first line: CPU % needs a time window.
  await new Promise((r) => setTimeout(r, 1000));
  const second = read();
  const wall = Number(process.hrtime.bigint() - t0);
  const rows: StatsRow[] = [];
  states.forEach((s, i) => {
    if (first[i] && second[i]) rows.push(statsRow(s, first[i]!, second[i]!, wall));
  });
  return rows;
}

async function stats(runRoot: string, ids: string[], stream: boolean, format: string): Promise<void> {
  for (;;) {
    const rows = await sample(runRoot, ids);
    if (format === 'json') process.stdout.write(rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
    else process.stdout.write((stream ? '\x1b[2J\x1b[H' : '') + table(rows));
    if (!stream) return;
  }
}
