// `tsrun network ...`, `tsrun port`, and the network flags of `tsrun run`.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { TsrunError } from '../errors.js';
import { type Paths, readState, resolvePaths, stateDir, containersDir } from '../runtime/state.js';
import { isAlive } from '../runtime/proc-scan.js';
import { requireRoot } from '../runtime/run.js';
import type { Spec } from '../spec/types.js';
import type { GlobalOptions } from './main.js';
import {
  NETWORK_ANNOTATION, applyNetworkToSpec, checkSubnetFree, collectNetworkGarbage, configOf, connectRunning, disconnectRunning, removeIdleBridges,
  type NetworkMode, type NetworkRequest,
} from '../network/attach.js';
import { parseAddHost } from '../network/files.js';
import { defaultGateway, formatSubnet, intToIp, ipToInt, contains, overlaps, parseSubnet } from '../network/ipam.js';
import { exposedToPublish, formatMapping, parseExpose, parsePublish } from '../network/ports.js';
import {
  DEFAULT_NETWORK, type NetworkDef, findDef, listDefs, listEndpoints, newNetworkId, removeDef, saveDef,
} from '../network/registry.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export interface NetworkFlags {
  network?: string;
  networkAlias: string[];
  publish: string[];
  publishAll: boolean;
  expose: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHost: string[];
}

export function addNetworkOptions(cmd: Command): Command {
  return cmd
    .option('--network <mode>', 'bridge (default), none, host, container:NAME, or a network made with `tsrun network create`')
    .option('--net <mode>', 'same as --network')
    .option('--network-alias <name>', 'another name for the container on its user network', collect, [])
    .option('-p, --publish <[ip:]hostport:ctrport[/proto]>', 'publish a container port on the host', collect, [])
    .option('-P, --publish-all', 'publish every exposed port (the image\'s and --expose\'s) on a free host port', false)
    .option('--expose <port[-port][/proto]>', 'expose a port or a range of ports; -P publishes them', collect, [])
    .option('--dns <address>', 'nameserver for the container\'s /etc/resolv.conf', collect, [])
    .option('--dns-search <domain>', 'search domain for /etc/resolv.conf', collect, [])
    .option('--dns-option <option>', 'resolver option for /etc/resolv.conf', collect, [])
    .option('--add-host <name:ip>', 'an extra /etc/hosts line', collect, []);
}

export interface FoundContainer {
  id: string;
  pid: number;
  pidStart: number;
  owner?: { pid: number; start: number };
  name?: string;
}

function recordName(p: Paths, id: string): string | undefined {
  try {
    const r = JSON.parse(readFileSync(join(p.root, 'containers', id, 'config.json'), 'utf8')) as { name?: unknown };
    return typeof r.name === 'string' ? r.name : undefined;
  } catch {
    return undefined;
  }
}

/** The --network mode recorded in a container's spec annotation ('bridge' when tsrun did not plan its network). */
function recordedMode(p: Paths, id: string): string {
  try {
    const r = JSON.parse(readFileSync(join(p.root, 'containers', id, 'config.json'), 'utf8')) as { spec?: Spec };
    const text = r.spec?.annotations?.[NETWORK_ANNOTATION];
    return text ? String((JSON.parse(text) as { mode?: unknown }).mode ?? 'bridge') : 'bridge';
  } catch {
    return 'bridge';
  }
}

/**
 * docker refuses to connect a container whose network is host, none or another
 * container's: its netns is not its own to add interfaces to (with host, the veth's
 * end would land in the host's namespace as eth0). The inode check also covers a
 * container whose record says nothing.
 */
function checkConnectable(p: Paths, c: FoundContainer, ref: string): void {
  const mode = recordedMode(p, c.id);
  let shared = false;
  try {
    shared = statSync(`/proc/${c.pid}/ns/net`).ino === statSync('/proc/self/ns/net').ino;
  } catch {
    /* it just ended: connect fails on its own below */
  }
  if (shared || mode === 'host' || mode === 'none' || mode === 'container') {
    const what = shared || mode === 'host' ? 'the host\'s network' : mode === 'none' ? '--network none' : 'another container\'s network namespace';
    throw new TsrunError('USAGE', `container ${ref} uses ${what}: it cannot be connected to other networks`, { hint: 'run it on a bridge network (the default, or --network NET) to connect it to more' });
  }
}

/** A running container by name (record or network endpoint), full id, or unique id prefix. */
export function findRunning(p: Paths, ref: string): FoundContainer {
  let ids: string[] = [];
  try {
    ids = readdirSync(containersDir(p));
  } catch {
    /* none */
  }
  const names = new Map<string, string>();
  for (const e of listEndpoints()) if (e.root === p.root && e.name) names.set(e.name, e.containerId);
  for (const id of ids) {
    const n = recordName(p, id);
    if (n) names.set(n, id);
  }
  let id = names.get(ref.replace(/^\//, '')) ?? (ids.includes(ref) ? ref : undefined);
  if (!id) {
    const hits = ref.length >= 3 ? ids.filter((i) => i.startsWith(ref)) : [];
    if (hits.length > 1) throw new TsrunError('NO_SUCH_CONTAINER', `container id prefix "${ref}" is ambiguous`, { hint: 'give more of the id' });
    id = hits[0];
  }
  const s = id ? readState(stateDir(p, id)) : null;
  if (!id || !s || !s.pid || !s.pidStart || !isAlive(s.pid, s.pidStart)) {
    throw new TsrunError('NO_SUCH_CONTAINER', `no running container "${ref}"`, { hint: 'name a running container by its --name or id' });
  }
  return { id, pid: s.pid, pidStart: s.pidStart, owner: s.owner ?? (s as { monitor?: { pid: number; start: number } }).monitor, name: [...names].find(([, v]) => v === id)?.[0] };
}

/** --network and friends -> the network part of a run: the spec edits and the attachment. */
export function planNetwork(flags: NetworkFlags, ctx: { paths: Paths; id: string; name?: string; hostname: string; exposedPorts?: string[] }): NetworkRequest {
  const want = flags.network ?? (flags as { net?: string }).net ?? DEFAULT_NETWORK;
  let mode: NetworkMode;
  if (want === 'none') mode = { kind: 'none' };
  else if (want === 'host') mode = { kind: 'host' };
  else if (want.startsWith('container:')) {
    const ref = want.slice('container:'.length);
    const c = findRunning(ctx.paths, ref);
    mode = { kind: 'container', ref, pid: c.pid, stateDir: stateDir(ctx.paths, c.id) };
  } else {
    const def = findDef(ctx.paths.root, want === 'default' ? DEFAULT_NETWORK : want);
    if (!def) throw new TsrunError('USAGE', `network "${want}" not found`, { hint: 'tsrun network ls lists them; tsrun network create NAME makes one' });
    mode = { kind: 'bridge', network: def };
  }
  if (flags.networkAlias.length && (mode.kind !== 'bridge' || mode.network.name === DEFAULT_NETWORK)) {
    throw new TsrunError('USAGE', '--network-alias works on user networks only', { hint: 'tsrun network create NET, then --network NET --network-alias NAME' });
  }
  const publish = flags.publish.map(parsePublish);
  // Parsed even without -P, so a bad --expose is an error, not silently ignored.
  const norm = (e: string): string => (e.includes('/') ? e : `${e}/tcp`); // the image-spec allows a bare "80"
  const exposed = [...new Set([...(ctx.exposedPorts ?? []).map(norm), ...(flags.expose ?? []).flatMap(parseExpose)])];
  if (flags.publishAll) {
    // As in docker, a port the user published with -p keeps only that binding.
    const explicit = new Set(publish.map((p) => `${p.containerPort}/${p.proto}`));
    publish.push(...exposedToPublish(exposed.filter((e) => !explicit.has(e))));
  }
  return {
    mode, id: ctx.id, root: ctx.paths.root, stateDir: stateDir(ctx.paths, ctx.id), hostname: ctx.hostname, name: ctx.name,
    aliases: flags.networkAlias, publish, dns: flags.dns, dnsSearch: flags.dnsSearch, dnsOption: flags.dnsOption,
    addHost: flags.addHost.map(parseAddHost),
  };
}

/**
 * Used by `tsrun run`: checks the flags now (a bad network fails before anything is
 * made), edits the spec (netns, /etc binds) and records the request in its annotations,
 * where the runtime's launch finds it (attachmentFromSpec).
 */
export async function applyNetworkFlags(spec: Spec, flags: NetworkFlags, ctx: { paths: Paths; id: string; name?: string; image?: string }): Promise<void> {
  const exposedPorts = flags.publishAll && ctx.image ? await exposedPortsOf(ctx.paths.root, ctx.image) : [];
  const req = planNetwork(flags, { ...ctx, exposedPorts, hostname: spec.hostname ?? ctx.id.slice(0, 12) });
  applyNetworkToSpec(spec, req);
  const target = req.mode.kind === 'container' ? findRunning(ctx.paths, req.mode.ref).id : undefined;
  spec.annotations = { ...spec.annotations, [NETWORK_ANNOTATION]: JSON.stringify(configOf(req, target)) };
}

/** ExposedPorts of the image a container was made from (for -P). */
export async function exposedPortsOf(root: string, image: string): Promise<string[]> {
  try {
    // Lazily: the image store is not needed by runs that do not use -P.
    const { ImageStore } = await import('../image/store.js');
    const rec = new ImageStore(root).getImage(image);
    return Object.keys(rec?.config.config?.ExposedPorts ?? {});
  } catch {
    return [];
  }
}

const NET_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

function autoSubnet(root: string): string {
  const taken = listDefs(root).map((d) => parseSubnet(d.subnet));
  for (let b = 124; b < 250; b++) {
    const s = parseSubnet(`10.${b}.0.0/16`);
    if (taken.some((t) => overlaps(t, s))) continue;
    try {
      checkSubnetFree(formatSubnet(s), null);
    } catch {
      continue;
    }
    return formatSubnet(s);
  }
  throw new TsrunError('USAGE', 'no free 10.x.0.0/16 subnet left for a new network', { hint: 'give one with --subnet' });
}

function printTable(rows: string[][]): void {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]! + 3))).join('') + '\n');
}

function inspectNetwork(d: NetworkDef, root: string): unknown {
  const eps = listEndpoints(d.bridge).filter((e) => e.networkId === d.id || (d.name === DEFAULT_NETWORK && e.root === root));
  return {
    Name: d.name, Id: d.id, Created: d.created || undefined, Driver: d.driver,
    IPAM: { Config: [{ Subnet: d.subnet, Gateway: d.gateway }] },
    Options: { 'com.tsrun.network.bridge.name': d.bridge },
    Containers: Object.fromEntries(eps.filter((e) => e.root === root).map((e) => [e.containerId, { Name: e.name ?? '', IPv4Address: `${e.ip}/${parseSubnet(d.subnet).prefix}`, Aliases: e.aliases, Ports: e.ports.map(formatMapping) }])),
  };
}

export function registerNetwork(program: Command): void {
  const paths = (cmd: Command): Paths => resolvePaths(cmd.optsWithGlobals<GlobalOptions>().root);
  const net = program.command('network').description('manage networks');

  net.command('create').argument('<name>').description('create a bridge network')
    .option('--subnet <cidr>', 'IPv4 subnet, e.g. 10.124.0.0/16')
    .option('--gateway <ip>', 'gateway address (default: the subnet\'s first)')
    .option('-d, --driver <driver>', 'only bridge', 'bridge')
    .action((name: string, o: { subnet?: string; gateway?: string; driver: string }, cmd: Command) => {
      const p = paths(cmd);
      if (o.driver !== 'bridge') throw new TsrunError('USAGE', `--driver ${o.driver}: tsrun has the bridge driver only`);
      if (!NET_NAME.test(name) || ['none', 'host', 'default', DEFAULT_NETWORK].includes(name)) throw new TsrunError('USAGE', `invalid network name "${name}"`, { hint: 'use [a-zA-Z0-9][a-zA-Z0-9_.-]*; bridge, host, none and default are reserved' });
      if (findDef(p.root, name)) throw new TsrunError('USAGE', `network with name ${name} already exists`);
      const subnet = o.subnet ?? autoSubnet(p.root);
      const s = parseSubnet(subnet);
      for (const d of listDefs(p.root)) if (overlaps(parseSubnet(d.subnet), s)) throw new TsrunError('USAGE', `--subnet ${subnet} overlaps network "${d.name}" (${d.subnet})`);
      checkSubnetFree(subnet, null);
      const gw = o.gateway ?? intToIp(defaultGateway(s));
      if (!contains(s, ipToInt(gw)) || ipToInt(gw) === s.base) throw new TsrunError('USAGE', `--gateway ${gw} is not a host address in ${subnet}`);
      const id = newNetworkId();
      saveDef(p.root, { name, id, driver: 'bridge', subnet, gateway: gw, bridge: `tsr-${id.slice(0, 11)}`, created: new Date().toISOString() });
      process.stdout.write(id + '\n');
    });

  net.command('ls').alias('list').description('list networks').option('-q, --quiet', 'only ids').action((o: { quiet?: boolean }, cmd: Command) => {
    const defs = listDefs(paths(cmd).root);
    if (o.quiet) return void process.stdout.write(defs.map((d) => d.id.slice(0, 12) + '\n').join(''));
    printTable([['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET', 'BRIDGE'], ...defs.map((d) => [d.id.slice(0, 12), d.name, d.driver, d.subnet, d.bridge])]);
  });

  net.command('inspect').argument('<names...>').description('show networks as JSON').action((names: string[], _o: unknown, cmd: Command) => {
    const p = paths(cmd);
    const out = names.map((n) => {
      const d = findDef(p.root, n);
      if (!d) throw new TsrunError('USAGE', `network ${n} not found`);
      return inspectNetwork(d, p.root);
    });
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  });

  net.command('rm').alias('remove').argument('<names...>').description('remove networks').action((names: string[], _o: unknown, cmd: Command) => {
    const p = paths(cmd);
    collectNetworkGarbage();
    for (const n of names) {
      const d = findDef(p.root, n);
      if (!d) throw new TsrunError('USAGE', `network ${n} not found`);
      if (d.name === DEFAULT_NETWORK) throw new TsrunError('USAGE', 'the default bridge network cannot be removed');
      const users = listEndpoints(d.bridge).filter((e) => e.networkId === d.id);
      if (users.length) throw new TsrunError('USAGE', `network ${n} has active endpoints: ${users.map((e) => e.name ?? e.containerId.slice(0, 12)).join(', ')}`, { hint: 'stop or disconnect those containers first' });
      removeDef(p.root, d.name);
      removeIdleBridges([d.bridge]);
      process.stdout.write(n + '\n');
    }
  });

  net.command('prune').description('remove unused networks, and any bridge or rule tsrun left behind').option('-f, --force', 'do not prompt (tsrun never prompts)').action((_o: unknown, cmd: Command) => {
    const p = paths(cmd);
    requireRoot();
    collectNetworkGarbage();
    const used = new Set(listEndpoints().map((e) => e.networkId));
    for (const d of listDefs(p.root)) {
      if (d.name === DEFAULT_NETWORK || used.has(d.id)) continue;
      removeDef(p.root, d.name);
      process.stdout.write(`${d.name}\n`);
    }
    removeIdleBridges();
  });

  net.command('connect').argument('<network>').argument('<container>').description('connect a running container to a network')
    .option('--alias <name>', 'network-scoped alias', collect, [])
    .action((network: string, container: string, o: { alias: string[] }, cmd: Command) => {
      const p = paths(cmd);
      requireRoot();
      collectNetworkGarbage();
      const d = findDef(p.root, network);
      if (!d) throw new TsrunError('USAGE', `network ${network} not found`);
      const c = findRunning(p, container);
      checkConnectable(p, c, container);
      if (!c.owner) throw new TsrunError('STATE', `container ${container} has no owner process to release its network`);
      const own = listEndpoints().find((e) => e.root === p.root && e.containerId === c.id);
      const hostname = own?.hostname ?? (() => { try { return readFileSync(join(stateDir(p, c.id), 'hostname'), 'utf8').trim(); } catch { return c.id.slice(0, 12); } })();
      connectRunning(d, { root: p.root, id: c.id, pid: c.pid, owner: c.owner, name: c.name, hostname, hostsPath: join(stateDir(p, c.id), 'hosts') }, o.alias);
    });

  net.command('disconnect').argument('<network>').argument('<container>').description('disconnect a container from a network').action((network: string, container: string, _o: unknown, cmd: Command) => {
    const p = paths(cmd);
    requireRoot();
    const d = findDef(p.root, network);
    if (!d) throw new TsrunError('USAGE', `network ${network} not found`);
    const c = findRunning(p, container);
    if (disconnectRunning(p.root, c.id, d.bridge) === 0) throw new TsrunError('USAGE', `container ${container} is not connected to network ${network}`);
  });

  program.command('port').argument('<container>').argument('[port]', 'PORT[/PROTO]').description('list a container\'s published ports').action((container: string, port: string | undefined, _o: unknown, cmd: Command) => {
    const p = paths(cmd);
    const c = findRunning(p, container);
    const eps = listEndpoints().filter((e) => e.root === p.root && e.containerId === c.id);
    let maps = eps.flatMap((e) => e.ports);
    if (port) {
      const [n, proto = 'tcp'] = port.split('/');
      maps = maps.filter((m) => String(m.containerPort) === n && m.proto === proto);
      if (!maps.length) throw new TsrunError('USAGE', `no public port '${port}' published for ${container}`);
      for (const m of maps) process.stdout.write(`${m.hostIp || '0.0.0.0'}:${m.hostPort}\n`);
      return;
    }
    for (const m of maps) process.stdout.write(formatMapping(m) + '\n');
  });
}
