// docker-style `run` flags -> an OCI runtime spec. This is the only place that knows
// docker's flag semantics; the runtime core only ever sees the spec.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { TsrunError } from '../errors.js';
import { DEFAULT_CAPABILITIES, heldCapabilities, normalizeCap } from '../security/capabilities.js';
import { DEFAULT_MASKED_PATHS, DEFAULT_PATH_ENV, DEFAULT_READONLY_PATHS, defaultMounts } from '../spec/defaults.js';
import type { MountSpec, Spec } from '../spec/types.js';
import { resourcesFromFlags, type ResourceFlags } from '../cgroups/flags.js';
import { seccompForContainer } from '../security/seccomp/profile.js';
import { DEFAULT_DEVICE_RULES, PRIVILEGED_DEVICE_RULES, toSpecRule, type SpecDeviceRule } from '../cgroups/devices/rules.js';
import { parseDeviceFlag } from '../cgroups/devices/flag.js';

export interface RunFlags extends ResourceFlags {
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  interactive: boolean;
  tty: boolean;
  readOnly: boolean;
  volume: string[];
  tmpfs: string[];
  capAdd: string[];
  capDrop: string[];
  ulimit: string[];
  privileged: boolean;
  /** docker's --security-opt: seccomp=PROFILE.json|unconfined, no-new-privileges[=true|false] */
  securityOpt?: string[];
  /** docker's --device HOST[:CONTAINER][:PERMISSIONS] (src/cgroups/devices/flag.ts) */
  device?: string[];
}

/** What an image contributes (issue 3 fills this from the image config). */
export interface ImageDefaults {
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  /** supplementary groups of the image's user (from its /etc/group) */
  additionalGids?: number[];
}

function usage(message: string, hint?: string): TsrunError {
  return new TsrunError('USAGE', message, hint ? { hint } : {});
}

/** -e KEY=VALUE sets; -e KEY copies KEY from tsrun's environment, or drops it if unset (docker). */
export function parseEnv(flags: Pick<RunFlags, 'env' | 'envFile'>, hostEnv: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  const add = (item: string): void => {
    if (item.includes('=')) out.push(item);
    else if (hostEnv[item] !== undefined) out.push(`${item}=${hostEnv[item]}`);
  };
  for (const file of flags.envFile) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw usage(`--env-file ${file}: ${(e as Error).message}`);
    }
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (t && !t.startsWith('#')) add(t);
    }
  }
  for (const e of flags.env) add(e);
  return out;
}

/** Later entries win, as in docker: image env, then -e. */
export function mergeEnv(...lists: string[][]): string[] {
  const map = new Map<string, string>();
  for (const list of lists) for (const e of list) map.set(e.split('=', 1)[0]!, e);
  return [...map.values()];
}

export function parseUser(user: string | undefined): { uid: number; gid: number } {
  if (!user || user === 'root') return { uid: 0, gid: 0 };
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m) throw usage(`-u ${user}: use a numeric uid[:gid] (names need an image's /etc/passwd)`);
  const uid = Number(m[1]);
  // docker: a numeric user with no group, and no passwd entry to name one, gets gid 0.
  return { uid, gid: m[2] !== undefined ? Number(m[2]) : 0 };
}

export function parseVolume(v: string): MountSpec {
  const parts = v.split(':');
  if (parts.length < 2 || parts.length > 3) throw usage(`-v ${v}: expected HOST-PATH:CONTAINER-PATH[:ro|rw]`);
  const [src, dst, mode = 'rw'] = parts as [string, string, string?];
  if (!isAbsolute(src)) throw usage(`-v ${v}: the host path must be absolute (named volumes are not supported yet)`);
  if (!isAbsolute(dst)) throw usage(`-v ${v}: the container path must be absolute`);
  const opts = mode.split(',');
  for (const o of opts) if (!['ro', 'rw', 'z', 'Z', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(o)) throw usage(`-v ${v}: unknown option "${o}"`);
  return { destination: dst, type: 'bind', source: resolve(src), options: ['rbind', ...opts.filter((o) => o !== 'z' && o !== 'Z')] };
}

export function parseTmpfs(t: string): MountSpec {
  const i = t.indexOf(':');
  const dst = i < 0 ? t : t.slice(0, i);
  if (!isAbsolute(dst)) throw usage(`--tmpfs ${t}: the container path must be absolute`);
  const opts = i < 0 ? [] : t.slice(i + 1).split(',').filter(Boolean);
  return { destination: dst, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', ...opts] };
}

const ULIMITS: Record<string, string> = {
  core: 'RLIMIT_CORE', cpu: 'RLIMIT_CPU', data: 'RLIMIT_DATA', fsize: 'RLIMIT_FSIZE', locks: 'RLIMIT_LOCKS',
  memlock: 'RLIMIT_MEMLOCK', msgqueue: 'RLIMIT_MSGQUEUE', nice: 'RLIMIT_NICE', nofile: 'RLIMIT_NOFILE',
  nproc: 'RLIMIT_NPROC', rss: 'RLIMIT_RSS', rtprio: 'RLIMIT_RTPRIO', rttime: 'RLIMIT_RTTIME',
  sigpending: 'RLIMIT_SIGPENDING', stack: 'RLIMIT_STACK', as: 'RLIMIT_AS',
};

export function parseUlimit(u: string): { type: string; soft: number; hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(u);
  if (!m || !ULIMITS[m[1]!]) throw usage(`--ulimit ${u}: expected NAME=SOFT[:HARD] with NAME one of ${Object.keys(ULIMITS).join(', ')}`);
  const lim = (s: string): number => (Number(s) < 0 ? 2 ** 64 - 1 : Number(s));
  const soft = lim(m[2]!);
  const hard = m[3] !== undefined ? lim(m[3]) : soft;
  if (soft > hard) throw usage(`--ulimit ${u}: the soft limit is above the hard limit`);
  return { type: ULIMITS[m[1]!]!, soft, hard };
}

export function capabilitySet(add: string[], drop: string[], privileged: boolean, held: string[] = heldCapabilities()): string[] {
  if (privileged) return [...held];
  const norm = (list: string[]): string[] =>
    list.map((c) => {
      try {
        return normalizeCap(c);
      } catch {
        throw usage(`unknown capability "${c}"`, 'capability names are listed in capabilities(7), e.g. NET_ADMIN or CAP_NET_ADMIN');
      }
    });
  const a = norm(add);
  const d = norm(drop);
  // moby's rules: --cap-drop ALL keeps only what is added; --cap-add ALL keeps all but
  // what is dropped; otherwise the defaults, minus drops, plus adds.
  let set: Set<string>;
  if (d.includes('ALL')) set = new Set(a.filter((c) => c !== 'ALL'));
  else if (a.includes('ALL')) set = new Set(held.filter((c) => !d.includes(c)));
  else {
    set = new Set(DEFAULT_CAPABILITIES.filter((c) => !d.includes(c)));
    for (const c of a) set.add(c);
  }
  return [...set];
}

export interface SecurityOpts {
  /** 'default', 'unconfined', or a profile file */
  seccomp: 'default' | 'unconfined' | { file: string };
  noNewPrivileges: boolean;
}

/** docker's --security-opt values; AppArmor and SELinux options are refused, tsrun has neither. */
export function parseSecurityOpts(list: string[] = []): SecurityOpts {
  const out: SecurityOpts = { seccomp: 'default', noNewPrivileges: false };
  for (const o of list) {
    // docker accepts both KEY=VALUE and the older KEY:VALUE
    const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(o);
    const key = m?.[1];
    const value = m?.[2];
    if (key === 'seccomp' && value) out.seccomp = value === 'unconfined' ? 'unconfined' : { file: resolve(value) };
    else if (key === 'no-new-privileges' && (value === undefined || value === 'true' || value === 'false')) out.noNewPrivileges = value !== 'false';
    else if (key === 'apparmor' || key === 'label') throw usage(`--security-opt ${o}: tsrun has no AppArmor or SELinux support`, 'tsrun confines containers with namespaces, capabilities, seccomp and masked paths only');
    else throw usage(`--security-opt ${o}: unknown option`, 'supported: seccomp=PROFILE.json, seccomp=unconfined, no-new-privileges');
  }
  return out;
}

export function specFromFlags(flags: RunFlags, command: string[], opts: { id: string; image?: ImageDefaults }): Spec {
  const image = opts.image ?? {};
  const args = [...(image.entrypoint ?? []), ...(command.length ? command : image.cmd ?? [])];
  if (args.length === 0) throw usage('no command given', 'put the command after the rootfs: tsrun run --rootfs DIR -- sh -c "echo hi"');
  const hostname = flags.hostname ?? opts.id.slice(0, 12);
  const user: { uid: number; gid: number; additionalGids?: number[] } = parseUser(flags.user ?? image.user);
  if (image.additionalGids?.length) user.additionalGids = image.additionalGids;
  const caps = capabilitySet(flags.capAdd, flags.capDrop, flags.privileged);
  const security = parseSecurityOpts(flags.securityOpt);
  // docker: --privileged runs unconfined unless a profile is named explicitly.
  const seccomp = flags.privileged && security.seccomp === 'default' ? undefined : seccompForContainer(security.seccomp, caps);
  const env = mergeEnv(
    [DEFAULT_PATH_ENV, `HOSTNAME=${hostname}`],
    flags.tty ? ['TERM=xterm'] : [],
    image.env ?? [],
    parseEnv(flags),
  );
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.uid === 0 ? '/root' : '/'}`);
  const mounts = defaultMounts();
  for (const t of flags.tmpfs) mounts.push(parseTmpfs(t));
  for (const v of flags.volume) mounts.push(parseVolume(v));
  // devices (issue 6): Docker's default allowlist (all for --privileged), then --device.
  const devFlags = (flags.device ?? []).map((d) => parseDeviceFlag(d));
  const deviceRules = [...(flags.privileged ? PRIVILEGED_DEVICE_RULES : DEFAULT_DEVICE_RULES), ...devFlags.map((d) => d.rule)].map(toSpecRule);
  return {
    ociVersion: '1.2.0',
    process: {
      terminal: flags.tty,
      user,
      args,
      env,
      cwd: flags.workdir ?? image.workingDir ?? '/',
      capabilities: { bounding: caps, effective: [...caps], permitted: [...caps] },
      rlimits: flags.ulimit.map(parseUlimit),
      noNewPrivileges: security.noNewPrivileges,
    },
    root: { path: 'rootfs', readonly: flags.readOnly },
    hostname,
    mounts,
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      ...(devFlags.length ? { devices: devFlags.map((d) => d.device) } : {}),
      ...resourcesSpec(flags, deviceRules),
      maskedPaths: flags.privileged ? [] : [...DEFAULT_MASKED_PATHS],
      readonlyPaths: flags.privileged ? [] : [...DEFAULT_READONLY_PATHS],
      ...(seccomp ? { seccomp: seccomp as unknown as Record<string, unknown> } : {}),
    },
  };
}

/** docker's --memory, --cpus, --pids-limit, ... as linux.resources (src/cgroups/flags.ts). */
function resourcesSpec(flags: ResourceFlags, devices: SpecDeviceRule[]): { resources?: Record<string, unknown> } {
  const resources = { ...resourcesFromFlags(flags), devices };
  return { resources: resources as Record<string, unknown> };
}
