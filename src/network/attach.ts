// A container's network: what `tsrun run` asks for (--network, -p, --dns, ...) turned
// into spec edits plus an attachment with three steps, independent of who runs the
// container (the foreground `run`, or a monitor for detached ones):
//   prepare()    before the container exists: resolve names, reserve host ports,
//                write /etc/hosts, /etc/resolv.conf and /etc/hostname for the spec's binds;
//   attach(pid)  the container's netns exists and nothing of its program has run (it is
//                parked at its start gate): bridge, veth, address, routes, firewall;
//   release()    the container ended (or failed to start): give everything back.
// A tsrun that is killed never calls release(); collectNetworkGarbage() does it for
// endpoints whose owner process is gone.
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TsrunError } from '../errors.js';
import { isAlive, procStartTime } from '../runtime/proc-scan.js';
import { type Paths, ownerNow, stateDir } from '../runtime/state.js';
import type { MountSpec, Spec } from '../spec/types.js';
import { cmd, step, tryCmd } from './exec.js';
import { applyRuleset } from './firewall.js';
import { hostsFile, resolvConf, type HostEntry } from './files.js';
import { formatSubnet, intToIp, ipToInt, nextFree, overlaps, parseSubnet } from './ipam.js';
import { withFileLock } from '../runtime/lock.js';
import { reserve, type PortSpec, type Reservation } from './ports.js';
import {
  DEFAULT_BRIDGE, appliedPath, findDef, type BridgeRecord, type Endpoint, type NetworkDef, claimEndpoint, ensureDirs, listBridges, listEndpoints, lockPath,
  readBridge, readForwarding, removeBridgeRecord, removeEndpoint, updateEndpoint, writeBridge, writeForwarding,
} from './registry.js';

export type NetworkMode =
  | { kind: 'none' }
  | { kind: 'host' }
  | { kind: 'container'; ref: string; pid: number; stateDir?: string }
  | { kind: 'bridge'; network: NetworkDef };

/** What the user asked of a container's network, beyond its mode (the run flags). */
export interface NetworkOptions {
  name?: string;
  aliases: string[];
  publish: PortSpec[];
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHost: HostEntry[];
}

export interface NetworkRequest extends NetworkOptions {
  mode: NetworkMode;
  id: string;
  root: string;
  /** the container's runtime state dir: the files for /etc live there */
  stateDir: string;
  hostname: string;
}

export interface NetworkAttachment {
  readonly request: NetworkRequest;
  prepare(): Promise<void>;
  attach(pid: number): void;
  release(): void;
  /** the published ports as bound (a -P or HOST-less -p gets its port here) */
  readonly ports: PortSpec[];
  readonly ip: string | undefined;
}

const sysNet = (dev: string): string => `/sys/class/net/${dev}`;

function writeInPlace(path: string, text: string): void {
  // Rewritten in place, never renamed over: the container sees the bind-mounted inode.
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    return; // its container is gone
  }
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, text, 0);
  } finally {
    closeSync(fd);
  }
}

/** The spec side: which netns, and binds for the three files. */
export function applyNetworkToSpec(spec: Spec, req: NetworkRequest): void {
  const ns = spec.linux?.namespaces ?? [];
  const others = ns.filter((n) => n.type !== 'network');
  if (req.mode.kind === 'host') spec.linux!.namespaces = others;
  else if (req.mode.kind === 'container') spec.linux!.namespaces = [...others, { type: 'network', path: `/proc/${req.mode.pid}/ns/net` }];
  else if (!ns.some((n) => n.type === 'network')) spec.linux!.namespaces = [...others, { type: 'network' }];
  const mounts: MountSpec[] = spec.mounts ?? [];
  const bind = (file: string, dst: string): MountSpec => ({ destination: dst, type: 'bind', source: join(req.stateDir, file), options: ['rbind', 'rprivate', 'rw'] });
  // docker mounts them rw: programs (and people) edit /etc/hosts in containers. A file
  // the user mounts there (-v FILE:/etc/hosts) wins, as in docker.
  const generated = [bind('resolv.conf', '/etc/resolv.conf'), bind('hosts', '/etc/hosts'), bind('hostname', '/etc/hostname')];
  spec.mounts = [...mounts, ...generated.filter((g) => !mounts.some((m) => m.destination === g.destination))];
}

function macFor(ip: number): string {
  // Derived from the address, as docker does, so a reused address keeps its MAC and
  // peers' ARP caches stay right. 02: locally administered, unicast.
  return ['02', '54', ...[ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** Routes on the host that are not tsrun's own bridges, as subnets: a new bridge must not shadow them. */
export function hostRoutes(): Array<{ dev: string; subnet: { base: number; prefix: number } }> {
  const out: Array<{ dev: string; subnet: { base: number; prefix: number } }> = [];
  let text = '';
  try {
    text = readFileSync('/proc/net/route', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const le = (h: string): number => Buffer.from(h, 'hex').readUInt32LE(0);
    const dst = le(f[1]!);
    const m = le(f[7]!);
    if (m === 0) continue; // the default route overlaps everything by design
    let prefix = 0;
    for (let x = m >>> 0; x & 0x80000000; x = (x << 1) >>> 0) prefix++;
    out.push({ dev: f[0]!, subnet: { base: dst >>> 0, prefix } });
  }
  return out;
}

export function checkSubnetFree(subnet: string, ownBridge: string | null): void {
  const s = parseSubnet(subnet);
  for (const r of hostRoutes()) {
    if (r.dev === ownBridge) continue;
    if (overlaps(s, r.subnet)) {
      throw new TsrunError('CONTAINER_SETUP', `network: subnet ${subnet} overlaps the host's route ${formatSubnet(r.subnet)} on ${r.dev}`, {
        hint: 'choose another --subnet (tsrun network create --subnet 10.124.0.0/16 NAME)',
      });
    }
  }
}

function ensureBridge(def: NetworkDef): BridgeRecord {
  const have = readBridge(def.bridge);
  const s = parseSubnet(def.subnet);
  if (have && existsSync(sysNet(def.bridge))) return have;
  checkSubnetFree(def.subnet, def.bridge);
  if (!existsSync(sysNet(def.bridge))) {
    cmd('ip', ['-batch', '-'], `create bridge ${def.bridge} for network "${def.name}": the containers' veths plug into it, and its address ${def.gateway} is their gateway`,
      `link add ${def.bridge} type bridge\naddr add ${def.gateway}/${s.prefix} dev ${def.bridge}\nlink set ${def.bridge} up\n`);
  }
  writeSysctl(`/proc/sys/net/ipv4/conf/${def.bridge}/route_localnet`, '1', `lets 127.0.0.1:PORT be DNATed to a container on ${def.bridge} (packets from 127/8 to it are dropped by tsrun's input chain)`);
  const rec: BridgeRecord = { bridge: def.bridge, subnet: def.subnet, gateway: def.gateway, network: def.name, networkId: def.id };
  writeBridge(rec);
  enableForwarding();
  return rec;
}

function writeSysctl(path: string, value: string, why: string): void {
  writeFileSync(path, value);
  step('sysctl', `${path.replace('/proc/sys/', '').replace(/\//g, '.')}=${value}`, why);
}

function enableForwarding(): void {
  const now = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  if (now === '1') return;
  if (readForwarding() === null) writeForwarding(now);
  writeSysctl('/proc/sys/net/ipv4/ip_forward', '1', 'containers\' outbound traffic is routed through the host; restored when tsrun\'s last bridge goes');
}

/**
 * Rebuilds the firewall from the registry. With `removeIdle` (network prune / rm) it
 * first removes idle bridges (all, or those named), and restores ip_forward once none
 * is left. Otherwise an idle bridge stays, like docker0: deleting a bridge costs ~35 ms
 * (the kernel waits for an RCU grace period to unregister it) and its table 20 ms more,
 * which every `run --rm` would pay as its last container goes.
 */
function reconcile(removeIdle: boolean | Set<string> = false, force = false): void {
  const eps = listEndpoints();
  for (const b of listBridges()) {
    if (eps.some((e) => e.bridge === b.bridge)) continue;
    if (removeIdle === false || (removeIdle !== true && !removeIdle.has(b.bridge))) continue;
    if (existsSync(sysNet(b.bridge))) tryCmd('ip', ['link', 'del', b.bridge], `no container is left on network "${b.network}": remove its bridge`);
    removeBridgeRecord(b.bridge);
  }
  const bridges = listBridges();
  applyRuleset(bridges, eps, appliedPath(), force);
  if (bridges.length === 0) {
    const before = readForwarding();
    if (before !== null) {
      writeSysctl('/proc/sys/net/ipv4/ip_forward', before, 'tsrun\'s last bridge is gone: put ip_forward back as it was');
      writeForwarding(null);
    }
  }
}

const key = (e: Pick<Endpoint, 'root' | 'containerId'>): string => `${e.root}\0${e.containerId}`;

/**
 * Rewrites /etc/hosts of every container on BRIDGES from the registry: names of peers on
 * user networks. `left` are endpoints just given back: their container is no longer on
 * those bridges but its own file still lists the peers there (and maybe its address on
 * them), so it is rewritten too.
 */
function refreshHosts(bridges: Set<string>, all: Endpoint[] = listEndpoints(), left: Endpoint[] = []): void {
  const touched = new Map<string, Endpoint[]>();
  for (const e of all) if (bridges.has(e.bridge) && e.hostsPath) touched.set(key(e), all.filter((x) => key(x) === key(e)));
  for (const e of left) {
    if (touched.has(key(e))) continue;
    const rest = all.filter((x) => key(x) === key(e));
    // A container with no network left keeps only its loopback lines and --add-host entries.
    if (rest.length) touched.set(key(e), rest);
    else if (e.hostsPath) writeInPlace(e.hostsPath, hostsFile(null, e.extraHosts, []));
  }
  for (const [, mine] of touched) {
    // The self line names the first interface's address (eth0, the one with the
    // default route), as docker's does; readdir order would pick any of them.
    mine.sort((a, b) => ifIndex(a.ifname) - ifIndex(b.ifname));
    const first = mine[0]!;
    const myBridges = new Set(mine.map((m) => m.bridge));
    const peers: HostEntry[] = [];
    // docker resolves names on user networks only; the default bridge has none.
    for (const p of all) {
      if (key(p) === key(first) || !myBridges.has(p.bridge) || p.bridge === DEFAULT_BRIDGE) continue;
      peers.push({ ip: p.ip, names: [...(p.name ? [p.name] : []), ...p.aliases, p.containerId.slice(0, 12)] });
    }
    const self = { ip: first.ip, names: [first.hostname, ...(first.name ? [first.name] : []), ...mine.flatMap((m) => m.aliases)] };
    writeInPlace(first.hostsPath!, hostsFile(self, first.extraHosts, peers));
  }
}

/**
 * Deletes the kernel's conntrack entries of UDP flows to the published host ports.
 * NAT is decided on a flow's first packet only: a UDP client that keeps its source
 * port (DNS, syslog, statsd, games) stays bound to whatever its first packet met (tsrun's
 * holding socket before the DNAT rule existed, or the address of a container that has
 * since gone), and each new packet renews the entry, so it never recovers on its own.
 * docker and kube-proxy delete these entries for the same reason. TCP needs nothing:
 * a new connection is a new flow. Needs conntrack(8) (Debian: conntrack); without it,
 * such a client recovers only once it stops sending for the entry's timeout (30-120 s).
 */
function forgetUdpFlows(ports: PortSpec[], why: string): void {
  for (const p of ports) {
    if (p.proto !== 'udp') continue;
    // Exit status 1 with "0 flow entries have been deleted" is the common, fine case.
    const r = tryCmd('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', String(p.hostPort)], why, undefined, [0, 1]);
    if (/ENOENT/.test(r.stderr)) {
      step('conntrack', 'not installed', 'stale UDP flows to published ports are left to expire (install conntrack to delete them)');
      return;
    }
  }
}

const ifIndex = (ifname: string): number => Number(/^eth(\d+)$/.exec(ifname)?.[1] ?? 1e6);

/** The lowest ethN that none of the container's endpoints uses: after a disconnect, eth1 may be free while eth2 is not. */
function freeIfname(have: Endpoint[]): string {
  const used = new Set(have.map((e) => e.ifname));
  for (let i = 0; ; i++) if (!used.has(`eth${i}`)) return `eth${i}`;
}

function vethName(): string {
  return `vtr${randomBytes(4).toString('hex')}`;
}

/**
 * Plugs the (gated) process PID into network DEF: claims an address, makes the veth
 * pair, configures the container's end, rebuilds the firewall. Caller holds the lock.
 */
function connectLocked(def: NetworkDef, pid: number, ep: Omit<Endpoint, 'ip' | 'bridge' | 'network' | 'networkId' | 'veth' | 'ifname' | 'created'>, ifname: string, defaultRoute: boolean): Endpoint {
  ensureDirs();
  const br = ensureBridge(def);
  const s = parseSubnet(def.subnet);
  const gw = ipToInt(def.gateway);
  const used = new Set(listEndpoints(def.bridge).map((e) => ipToInt(e.ip)));
  let e: Endpoint | null = null;
  let last = br.last ? ipToInt(br.last) : undefined;
  for (let tries = 0; tries < 64 && !e; tries++) {
    const ip = nextFree(s, gw, used, last);
    if (ip === null) break;
    const cand: Endpoint = { ...ep, ip: intToIp(ip), bridge: def.bridge, network: def.name, networkId: def.id, veth: vethName(), ifname, created: new Date().toISOString() };
    if (claimEndpoint(cand)) e = cand;
    else used.add(ip); // taken: another root's tsrun without the lock? never, but O_EXCL says so
    last = ip;
  }
  if (!e) throw new TsrunError('CONTAINER_SETUP', `network "${def.name}": no free address left in ${def.subnet}`, { hint: 'stop some containers, or create a network with a larger --subnet' });
  step('ipam', `${e.ip} on ${def.bridge}`, `address for container ${e.containerId.slice(0, 12)} in ${def.subnet}, claimed by an O_EXCL file so no other tsrun can take it`);
  writeBridge({ ...br, last: e.ip });
  try {
    const ipn = ipToInt(e.ip);
    cmd('ip', ['-batch', '-'], `a veth pair: ${e.veth} on ${def.bridge}, its peer created directly in the container's netns (pid ${pid}) as ${ifname}`,
      `link add ${e.veth} type veth peer name ${ifname} address ${macFor(ipn)} netns ${pid}\nlink set ${e.veth} master ${def.bridge} up\n`);
    const inside = `addr add ${e.ip}/${s.prefix} dev ${ifname}\nlink set ${ifname} up\n${defaultRoute ? `route add default via ${def.gateway}\n` : ''}`;
    cmd('nsenter', ['-t', String(pid), '-n', 'ip', '-batch', '-'], `inside the container's netns: address ${e.ip}/${s.prefix} on ${ifname}${defaultRoute ? `, default route via ${def.gateway}` : ''}`, inside);
    applyRuleset(listBridges(), listEndpoints(), appliedPath());
    forgetUdpFlows(e.ports, `UDP flows to host port(s) ${e.ports.filter((p) => p.proto === 'udp').map((p) => p.hostPort).join(',')} tracked before this DNAT rule would keep their old destination`);
    return e;
  } catch (err) {
    removeEndpoint(e);
    if (existsSync(sysNet(e.veth))) tryCmd('ip', ['link', 'del', e.veth], 'undo: the container could not be attached');
    reconcile();
    throw err;
  }
}

/** Gives back every endpoint of container ID (under ROOT), or only those on BRIDGE. Caller holds the lock. */
function disconnectLocked(root: string, id: string, bridge?: string): Endpoint[] {
  const all = listEndpoints();
  const mine = all.filter((e) => e.root === root && e.containerId === id && (!bridge || e.bridge === bridge));
  for (const e of mine) {
    removeEndpoint(e);
    // When the container's netns died its veth pair went with it; check before calling ip.
    if (e.veth && existsSync(sysNet(e.veth))) tryCmd('ip', ['link', 'del', e.veth], `release container ${id.slice(0, 12)}'s veth on ${e.bridge}`);
    step('ipam', `release ${e.ip} on ${e.bridge}`, `container ${id.slice(0, 12)} left network "${e.network}"`);
  }
  if (mine.length) {
    reconcile();
    forgetUdpFlows(mine.flatMap((e) => e.ports), `UDP flows DNATed to container ${id.slice(0, 12)} would keep going to its released address`);
    refreshHosts(new Set(mine.map((e) => e.bridge)), listEndpoints(), bridge ? mine : []);
  }
  return mine;
}

export function createAttachment(req: NetworkRequest): NetworkAttachment {
  const reservations: Reservation[] = [];
  let ports: PortSpec[] = [];
  let ip: string | undefined;
  let attached = false;
  const owner = ownerNow();
  const files = {
    hosts: join(req.stateDir, 'hosts'),
    resolv: join(req.stateDir, 'resolv.conf'),
    hostname: join(req.stateDir, 'hostname'),
  };
  return {
    request: req,
    get ports() {
      return ports;
    },
    get ip() {
      return ip;
    },
    async prepare() {
      if (req.publish.length && req.mode.kind !== 'bridge') {
        throw new TsrunError('USAGE', `-p needs a bridge network; --network ${req.mode.kind} has no ports to publish`, { hint: 'with --network host the container\'s ports are the host\'s already' });
      }
      try {
        for (const p of req.publish) {
          const r = await reserve(p);
          reservations.push(r);
          step('reserve-port', `${r.spec.hostIp || '0.0.0.0'}:${r.spec.hostPort}/${r.spec.proto}`, 'tsrun holds the host port while the container runs: nothing else can take it, and a busy port fails now, before anything is made');
        }
      } catch (e) {
        for (const r of reservations) r.close();
        reservations.length = 0;
        throw e;
      }
      ports = reservations.map((r) => r.spec);
      let hostResolv = '';
      try {
        hostResolv = readFileSync('/etc/resolv.conf', 'utf8');
      } catch {
        /* no resolver configured on the host */
      }
      const m = req.mode;
      const shared = m.kind === 'container' && m.stateDir && existsSync(join(m.stateDir, 'hosts')) ? m.stateDir : null;
      writeFileSync(files.resolv, shared ? readFileSync(join(shared, 'resolv.conf'), 'utf8') : resolvConf(hostResolv, { dns: req.dns, dnsSearch: req.dnsSearch, dnsOption: req.dnsOption, hostNetwork: m.kind === 'host' }));
      writeFileSync(files.hostname, `${req.hostname}\n`);
      let hosts: string;
      if (shared) hosts = readFileSync(join(shared, 'hosts'), 'utf8');
      else if (m.kind === 'host') {
        let h = '';
        try {
          h = readFileSync('/etc/hosts', 'utf8');
        } catch {
          /* none */
        }
        hosts = h + req.addHost.map((e) => `${e.ip}\t${e.names.join(' ')}\n`).join('');
      } else hosts = hostsFile(null, req.addHost, []); // the container's own line comes with its address
      writeFileSync(files.hosts, hosts);
      step('etc-files', req.stateDir, 'resolv.conf, hosts and hostname for the container, bind-mounted over its /etc');
    },
    attach(pid: number) {
      if (req.mode.kind !== 'bridge') return;
      const def = req.mode.network;
      const t = ownerNow();
      withNetworkLock(() => {
        const e = connectLocked(def, pid, {
          root: req.root, containerId: req.id, name: req.name, hostname: req.hostname, aliases: req.aliases,
          owner: t.pid === owner.pid ? owner : t, pid, pidStart: procStartTime(pid) ?? undefined, ports, extraHosts: req.addHost, hostsPath: files.hosts,
        }, 'eth0', true);
        attached = true;
        ip = e.ip;
        refreshHosts(new Set([def.bridge]));
      });
    },
    release() {
      for (const r of reservations) r.close();
      reservations.length = 0;
      if (!attached) return;
      attached = false;
      withNetworkLock(() => disconnectLocked(req.root, req.id));
    },
  };
}

/** `tsrun network connect`: one more network for a running container. */
export function connectRunning(def: NetworkDef, c: { root: string; id: string; pid: number; owner: { pid: number; start: number }; name?: string; hostname: string; hostsPath?: string }, aliases: string[]): Endpoint {
  return withNetworkLock(() => {
    const have = listEndpoints().filter((e) => e.root === c.root && e.containerId === c.id);
    if (have.some((e) => e.bridge === def.bridge)) {
      throw new TsrunError('USAGE', `container ${c.name ?? c.id.slice(0, 12)} is already connected to network ${def.name}`, { hint: `tsrun network inspect ${def.name} lists its containers` });
    }
    const ifname = freeIfname(have);
    const e = connectLocked(def, c.pid, {
      root: c.root, containerId: c.id, name: c.name, hostname: c.hostname, aliases, owner: c.owner, pid: c.pid, ports: [], extraHosts: have[0]?.extraHosts ?? [],
      hostsPath: have[0]?.hostsPath ?? c.hostsPath,
    }, ifname, have.length === 0);
    refreshHosts(new Set([def.bridge, ...have.map((h) => h.bridge)]));
    return e;
  });
}

/** Releases the container's endpoint on BRIDGE, or all of them. */
export function disconnectRunning(root: string, id: string, bridge?: string): number {
  return withNetworkLock(() => disconnectLocked(root, id, bridge).length);
}

/**
 * Releases endpoints whose owner is gone (a tsrun killed with -9) and whose container
 * has ended too: their veths, their addresses and their published ports' rules. A
 * container that outlived its owner keeps its network: a detached one whose monitor
 * was killed runs on, and the next monitor adopts it and releases it at its exit.
 * Cheap when there is nothing to do: one directory scan, no lock, no command. Idle
 * bridges stay until `network prune`.
 */
export function collectNetworkGarbage(): number {
  const stale = (e: Endpoint): boolean => !isAlive(e.owner.pid, e.owner.start) && !(e.pid && e.pidStart && isAlive(e.pid, e.pidStart));
  if (!listEndpoints().some(stale)) return 0;
  return withNetworkLock(() => {
    const dead = listEndpoints().filter(stale);
    const ids = new Set(dead.map(key));
    let n = 0;
    for (const k of ids) {
      const e = dead.find((d) => key(d) === k)!;
      step('gc', `container ${e.containerId.slice(0, 12)}`, `the tsrun that owned its network endpoint (pid ${e.owner.pid}) is gone`);
      n += disconnectLocked(e.root, e.containerId).length;
    }
    return n;
  });
}

/**
 * `tsrun network prune` (all idle bridges) and `network rm` (that network's): with no
 * endpoint left, no bridge, no rule and no ip_forward change of tsrun's stays.
 */
export function removeIdleBridges(only?: string[]): void {
  withNetworkLock(() => {
    ensureDirs();
    reconcile(only ? new Set(only) : true, only === undefined);
  });
}


/**
 * The network part of a run as plain data, kept in the spec's annotations so that
 * whoever launches the spec (the foreground run, or the monitor of a detached container
 * that reads the spec back from its record) attaches the same network. It holds no
 * paths: the state dir and root come from the launcher, so a hostile bundle's
 * annotation cannot make tsrun write anywhere else.
 */
export const NETWORK_ANNOTATION = 'io.tsrun.network';

export interface NetworkConfig extends NetworkOptions {
  mode: 'none' | 'host' | 'bridge' | 'container';
  /** bridge: the network's name in this root */
  network?: string;
  /** container: the id of the container whose netns is joined */
  target?: string;
}

export function configOf(req: NetworkRequest, target?: string): NetworkConfig {
  const m = req.mode;
  return {
    mode: m.kind, ...(m.kind === 'bridge' ? { network: m.network.name } : {}), ...(target ? { target } : {}), ...(req.name ? { name: req.name } : {}),
    aliases: req.aliases, publish: req.publish, dns: req.dns, dnsSearch: req.dnsSearch, dnsOption: req.dnsOption, addHost: req.addHost,
  };
}

/** The attachment a spec asks for through its annotation, or undefined (a plain OCI spec: no tsrun networking). */
export function attachmentFromSpec(spec: Spec, paths: Paths, id: string): NetworkAttachment | undefined {
  const text = spec.annotations?.[NETWORK_ANNOTATION];
  if (!text) return undefined;
  let c: NetworkConfig;
  try {
    c = JSON.parse(text) as NetworkConfig;
  } catch {
    throw new TsrunError('SPEC_INVALID', `invalid OCI spec: annotations.${NETWORK_ANNOTATION} is not JSON`);
  }
  let mode: NetworkMode;
  if (c.mode === 'none' || c.mode === 'host') mode = { kind: c.mode };
  else if (c.mode === 'container') {
    const pathNs = spec.linux?.namespaces?.find((n) => n.type === 'network')?.path ?? '';
    mode = { kind: 'container', ref: c.target ?? '', pid: Number(/^\/proc\/(\d+)\//.exec(pathNs)?.[1] ?? 0), ...(c.target && /^[0-9a-f]{64}$/.test(c.target) ? { stateDir: stateDir(paths, c.target) } : {}) };
  } else {
    const def = findDef(paths.root, c.network ?? 'bridge');
    if (!def) throw new TsrunError('USAGE', `network "${c.network}" not found`, { hint: 'tsrun network ls lists them' });
    mode = { kind: 'bridge', network: def };
  }
  const arr = <T>(v: T[] | undefined): T[] => (Array.isArray(v) ? v : []);
  return createAttachment({
    mode, id, root: paths.root, stateDir: stateDir(paths, id), hostname: spec.hostname ?? id.slice(0, 12), ...(c.name ? { name: c.name } : {}),
    aliases: arr(c.aliases).map(String), publish: arr(c.publish), dns: arr(c.dns).map(String), dnsSearch: arr(c.dnsSearch).map(String),
    dnsOption: arr(c.dnsOption).map(String), addHost: arr(c.addHost),
  });
}

/** Bridges, veths, addresses and tsrun's nftables table are host-wide: one lock for all of them, whatever the --root. */
function withNetworkLock<T>(fn: () => T): T {
  return withFileLock(lockPath(), fn, {
    what: 'the network', code: 'CONTAINER_SETUP', timeoutMs: 60_000,
    onBreak: (pid) => step('break-lock', lockPath(), `the holder (pid ${pid}) is gone; its changes are re-checked by the garbage collector`),
  });
}
