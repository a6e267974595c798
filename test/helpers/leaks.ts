// A leak checker for e2e tests that run on a shared host.
//
// Other engineers run e2e tests at the same time, so global counts (all mounts, all
// processes) prove nothing. The checker only looks at what mentions *this test's*
// paths: its temp dirs, its TSRUN_ROOT, its rootfs.
//
//   const leaks = new LeakChecker();
//   leaks.watchPath(testDir);            // mounts and processes that mention it
//   leaks.watchStateRoot(tsrunRoot);     // TSRUN_ROOT/run/containers/* must be gone
//   leaks.watchEmptyDir(tsrunTmp);       // tsrun's TMPDIR must end up empty
//   const before = leaks.snapshot();
//   ... run tsrun ...
//   const found = await leaks.findLeaks(before);   // [] when clean
//   leaks.cleanUp(found);                           // so one leak does not poison later tests
//
// How a container process is recognised: after pivot_root its cwd and root read as
// "/", and its argv need not mention the rootfs. But its mount namespace still
// records where its mounts came from: the `root` field of /proc/PID/mountinfo names
// the rootfs directory (relative to the filesystem that holds it) and every bind
// source. So processes in another mount namespace are matched on their mountinfo.
import { readFileSync, readdirSync, readlinkSync, existsSync, mkdirSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { detachMountsUnder, unescapeMountPath } from './tempdirs.js';

export interface LeakSnapshot {
  mounts: string[];
  processes: string[];
  state: string[];
  files: string[];
  cgroups: string[];
  network: string[];
}

export interface Leak {
  kind: 'mount' | 'process' | 'state' | 'file' | 'cgroup' | 'network';
  what: string;
  /** for processes: the pid, so cleanUp can kill it */
  pid?: number;
}

interface MountEntry {
  root: string;
  mountPoint: string;
  source: string;
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (f.length < 5 || dash < 0) continue;
    out.push({ root: unescapeMountPath(f[3]!), mountPoint: unescapeMountPath(f[4]!), source: unescapeMountPath(f[dash + 2] ?? '') });
  }
  return out;
}

function readOr(path: string, fallback = ''): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

function linkOr(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/**
 * The names a host path can have in mountinfo's `root` field: the path itself, and the
 * path relative to the filesystem that holds it (a dir on a tmpfs /tmp appears as
 * /tsrun-e2e-x/..., not /tmp/tsrun-e2e-x/...).
 */
export function pathAliases(path: string, hostMounts: MountEntry[] = parseMountinfo(readOr('/proc/self/mountinfo'))): string[] {
  const aliases = new Set([path]);
  let best: MountEntry | undefined;
  for (const m of hostMounts) {
    const mp = m.mountPoint;
    if ((path === mp || path.startsWith(mp === '/' ? '/' : mp + '/')) && (!best || mp.length >= best.mountPoint.length)) best = m;
  }
  if (best) {
    const rest = best.mountPoint === '/' ? path : path.slice(best.mountPoint.length);
    const rel = (best.root === '/' ? '' : best.root) + rest;
    // A one-component alias such as "/x" would match too much; it needs some depth.
    if (rel.split('/').filter(Boolean).length >= 1 && rel.length > 8) aliases.add(rel);
  }
  return [...aliases];
}

function mentions(text: string, needles: string[]): boolean {
  return needles.some((n) => text === n || text.includes(n + '/') || text.endsWith(n) || text.includes(n + '\0') || text.includes(n + ' '));
}

/** Pids (other than this process) that mention any of `paths`: cwd, root, exe, argv, or mounts in their own namespace. */
export function processesMentioning(paths: string[]): { pid: number; why: string }[] {
  const hostMounts = parseMountinfo(readOr('/proc/self/mountinfo'));
  const needles = [...new Set(paths.flatMap((p) => pathAliases(p, hostMounts)))];
  const ownMntNs = linkOr('/proc/self/ns/mnt');
  const out: { pid: number; why: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const base = `/proc/${pid}`;
    const cmdline = readOr(`${base}/cmdline`);
    if (!cmdline && !existsSync(base)) continue;
    // Zombies have no cwd/root/cmdline but still count until reaped.
    const stat = readOr(`${base}/stat`);
    const shown = `pid ${pid} (${cmdline.replace(/\0/g, ' ').trim() || stat.split(' ')[1] || '?'})`;
    const why: string[] = [];
    for (const l of ['cwd', 'root', 'exe']) {
      const t = linkOr(`${base}/${l}`);
      if (t && mentions(t, needles)) why.push(`${l}=${t}`);
    }
    if (mentions(cmdline, needles)) why.push('cmdline');
    const mntNs = linkOr(`${base}/ns/mnt`);
    if (mntNs && mntNs !== ownMntNs) {
      const hit = parseMountinfo(readOr(`${base}/mountinfo`)).find((m) => mentions(m.root, needles) || mentions(m.source, needles));
      if (hit) why.push(`its mount namespace holds ${hit.root} at ${hit.mountPoint}`);
    }
    if (why.length) out.push({ pid, why: `${shown}: ${why.join(', ')}` });
  }
  return out;
}

/** Processes of a running container: those whose mount namespace is built on `rootfs`. */
export function containerPids(rootfs: string): number[] {
  const hostMounts = parseMountinfo(readOr('/proc/self/mountinfo'));
  const needles = pathAliases(rootfs, hostMounts);
  const ownMntNs = linkOr('/proc/self/ns/mnt');
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ns = linkOr(`/proc/${name}/ns/mnt`);
    if (!ns || ns === ownMntNs) continue;
    const rootMount = parseMountinfo(readOr(`/proc/${name}/mountinfo`)).find((m) => m.mountPoint === '/');
    if (rootMount && needles.includes(rootMount.root)) out.push(Number(name));
  }
  return out;
}

/**
 * Cgroup directories named after one of `ids`, at depth 1 or 2 under any hierarchy in
 * /sys/fs/cgroup (tsrun puts a container at <parent>/<id>). Only exact ids are looked
 * for, so other people's containers never count.
 */
export function cgroupsNamed(ids: Iterable<string>, base = '/sys/fs/cgroup'): string[] {
  const want = new Set(ids);
  if (want.size === 0) return [];
  const out: string[] = [];
  const dirs = (d: string): string[] => {
    try {
      return readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return [];
    }
  };
  for (const hier of dirs(base)) {
    const top = join(base, hier);
    for (const a of dirs(top)) {
      if (want.has(a)) out.push(join(top, a));
      for (const b of dirs(join(top, a))) if (want.has(b)) out.push(join(top, a, b));
    }
  }
  return out.sort();
}

/** One endpoint record of tsrun's bridge driver: TSRUN_NET_RUN/endpoints/<bridge>/<ip>. */
export interface EndpointFile { ip: string; bridge: string; network: string; root: string; containerId: string; veth: string; ifname: string; name?: string }

/** Every endpoint registered on the host (all roots: bridges are host-wide). */
export function endpointFiles(netRun = process.env.TSRUN_NET_RUN ?? '/run/tsrun/networks'): EndpointFile[] {
  const base = join(netRun, 'endpoints');
  const out: EndpointFile[] = [];
  let bridges: string[] = [];
  try {
    bridges = readdirSync(base);
  } catch {
    return out;
  }
  for (const b of bridges) {
    let files: string[] = [];
    try {
      files = readdirSync(join(base, b));
    } catch {
      continue;
    }
    for (const f of files) {
      try {
        out.push(JSON.parse(readOr(join(base, b, f))) as EndpointFile);
      } catch {
        /* being written */
      }
    }
  }
  return out;
}

/**
 * Network endpoints of the given containers still registered on the host, and their
 * host-side veth if it still exists. The veth's name is random, so the endpoint record
 * is the only way to tie a host interface to one of our containers.
 */
export function networkEndpointsOf(ids: Iterable<string>, netRun?: string): string[] {
  const want = new Set(ids);
  if (want.size === 0) return [];
  return endpointFiles(netRun)
    .filter((e) => want.has(e.containerId))
    .map((e) => `endpoint ${e.ip} on ${e.bridge} of ${e.containerId.slice(0, 12)}, veth ${e.veth}${existsSync(join('/sys/class/net', e.veth)) ? ' still on the host' : ''}`)
    .sort();
}

export class LeakChecker {
  private readonly paths: string[] = [];
  private readonly stateRoots: string[] = [];
  private readonly emptyDirs: string[] = [];
  private readonly watchers: FSWatcher[] = [];
  /** ids of every container that appeared under a watched TSRUN_ROOT (inotify on run/containers) */
  readonly containerIds = new Set<string>();

  /** Mounts and processes that mention `path` (or anything under it) are leaks. */
  watchPath(path: string): this {
    this.paths.push(path);
    return this;
  }

  /**
   * A TSRUN_ROOT: every entry left under run/containers is a leak, and so is a cgroup
   * or a network endpoint (and its veth) of any container id that appeared there. The ids are caught with inotify
   * as tsrun creates each state dir, since the dirs are gone by the time we look.
   */
  watchStateRoot(root: string): this {
    this.stateRoots.push(root);
    const dir = join(root, 'run', 'containers');
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    const w = watch(dir, (_event, name) => {
      const id = name?.toString();
      if (id && /^[0-9a-f]{16,}$/.test(id)) this.containerIds.add(id);
    });
    w.on('error', () => {});
    this.watchers.push(w);
    return this;
  }

  /** Stops watching state roots for new container ids. */
  close(): void {
    for (const w of this.watchers.splice(0)) w.close();
  }

  /** A dir that must be empty afterwards (tsrun's TMPDIR). */
  watchEmptyDir(dir: string): this {
    this.emptyDirs.push(dir);
    return this;
  }

  snapshot(): LeakSnapshot {
    const hostMounts = parseMountinfo(readOr('/proc/self/mountinfo'));
    const needles = [...new Set(this.paths.flatMap((p) => pathAliases(p, hostMounts)))];
    const mounts = hostMounts
      .filter((m) => mentions(m.mountPoint, needles) || mentions(m.root, needles) || mentions(m.source, needles))
      .map((m) => `${m.source} on ${m.mountPoint} (root ${m.root})`);
    const processes = this.paths.length ? processesMentioning(this.paths).map((p) => p.why) : [];
    const state: string[] = [];
    for (const r of this.stateRoots) {
      const dir = join(r, 'run', 'containers');
      try {
        for (const e of readdirSync(dir)) state.push(join(dir, e));
      } catch {
        /* never created: nothing left */
      }
    }
    const files: string[] = [];
    for (const d of this.emptyDirs) {
      try {
        for (const e of readdirSync(d)) files.push(join(d, e));
      } catch {
        /* gone is empty */
      }
    }
    // Ids seen by inotify, plus any state dir still present (its id may predate the watch).
    const ids = new Set([...this.containerIds, ...state.map((p) => p.split('/').pop()!)]);
    return { mounts: mounts.sort(), processes: processes.sort(), state: state.sort(), files: files.sort(), cgroups: cgroupsNamed(ids), network: networkEndpointsOf(ids) };
  }

  private diff(before: LeakSnapshot): Leak[] {
    const now = this.snapshot();
    const leaks: Leak[] = [];
    const fresh = (a: string[], b: string[]): string[] => a.filter((x) => !b.includes(x));
    for (const m of fresh(now.mounts, before.mounts)) leaks.push({ kind: 'mount', what: m });
    for (const p of fresh(now.processes, before.processes)) leaks.push({ kind: 'process', what: p, pid: Number(/^pid (\d+)/.exec(p)?.[1]) });
    for (const s of fresh(now.state, before.state)) leaks.push({ kind: 'state', what: s });
    for (const f of fresh(now.files, before.files)) leaks.push({ kind: 'file', what: f });
    for (const c of fresh(now.cgroups, before.cgroups)) leaks.push({ kind: 'cgroup', what: c });
    for (const n of fresh(now.network, before.network)) leaks.push({ kind: 'network', what: n });
    return leaks;
  }

  /**
   * What exists now and did not before. Polls for up to `graceMs`: a container's last
   * processes are reaped by the kernel just after tsrun has returned.
   */
  async findLeaks(before: LeakSnapshot, graceMs = 3000): Promise<Leak[]> {
    const deadline = Date.now() + graceMs;
    for (;;) {
      const leaks = this.diff(before);
      if (leaks.length === 0 || Date.now() >= deadline) return leaks;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Best effort: kill leaked processes and detach leaked mounts, so later tests start clean. */
  cleanUp(leaks: Leak[]): void {
    for (const l of leaks) {
      if (l.kind === 'process' && l.pid) {
        try {
          process.kill(l.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    if (leaks.some((l) => l.kind === 'mount')) for (const p of this.paths) detachMountsUnder(p);
    // Leaked cgroups are reported, not removed: only tsrun's own cleanup (or the
    // engineer looking at the report) should remove cgroups that tsrun made.
  }
}

/** One line per leak, for an assertion message. */
export function describeLeaks(leaks: Leak[]): string {
  return leaks.map((l) => `${l.kind}: ${l.what}`).join('\n');
}
