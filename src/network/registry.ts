// Where networks and their allocations live.
//
//   <root>/networks/<name>.json          a user network's definition (persistent, per --root)
//   <netRun>/lock                        the host-wide network lock (lock.ts)
//   <netRun>/bridges/<bridge>.json       a bridge tsrun made and still uses
//   <netRun>/endpoints/<bridge>/<ip>     one allocated address = one container endpoint
//   <netRun>/forwarding                  net.ipv4.ip_forward as it was before tsrun set it
//   <netRun>/ruleset.nft                 the text of tsrun's nftables table as last loaded
//
// netRun is /run/tsrun/networks whatever --root says: bridges, addresses and tsrun's
// nftables table are host-wide objects, so two tsrun roots (the test suite gives every
// test its own) must share one allocator or they would hand out the same address on
// tsrun0. It is on a tmpfs on purpose: an allocation only means something while its
// container runs, and no container survives a reboot. An address file is created with
// O_EXCL, so even without the lock no address can be handed out twice.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, openSync, closeSync, writeSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { PortSpec } from './ports.js';
import type { HostEntry } from './files.js';

export const DEFAULT_NETWORK = 'bridge';
export const DEFAULT_BRIDGE = 'tsrun0';
/** Checked against this host's routes; podman uses 10.88/16 and 10.89.x/24, docker 172.17/16. */
export const DEFAULT_SUBNET = '10.123.0.0/16';

export interface NetworkDef {
  name: string;
  id: string;
  driver: 'bridge';
  subnet: string;
  gateway: string;
  bridge: string;
  created: string;
}

export interface Endpoint {
  ip: string;
  bridge: string;
  network: string;
  networkId: string;
  /** the tsrun --root of the container: names and ids are only unique within one */
  root: string;
  containerId: string;
  name?: string;
  hostname: string;
  aliases: string[];
  /** host end of the veth pair; the other end is ethN in the container */
  veth: string;
  ifname: string;
  /** the process that will release this endpoint; dead owner = garbage */
  owner: { pid: number; start: number };
  pid?: number;
  pidStart?: number;
  ports: PortSpec[];
  extraHosts: HostEntry[];
  /** the container's /etc/hosts (bind-mounted), rewritten in place as peers come and go */
  hostsPath?: string;
  created: string;
}

export function netRunDir(): string {
  return process.env.TSRUN_NET_RUN ?? '/run/tsrun/networks';
}

export const lockPath = (): string => join(netRunDir(), 'lock');
/** the nftables text last loaded (firewall.ts) */
export const appliedPath = (): string => join(netRunDir(), 'ruleset.nft');

export function ensureDirs(): void {
  mkdirSync(join(netRunDir(), 'bridges'), { recursive: true, mode: 0o700 });
  mkdirSync(join(netRunDir(), 'endpoints'), { recursive: true, mode: 0o700 });
}

function writeAtomic(path: string, data: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

// --- network definitions (per root) ---

export function defsDir(root: string): string {
  return join(root, 'networks');
}

export function defaultNetwork(): NetworkDef {
  return { name: DEFAULT_NETWORK, id: '0'.repeat(64), driver: 'bridge', subnet: DEFAULT_SUBNET, gateway: '10.123.0.1', bridge: DEFAULT_BRIDGE, created: '' };
}

export function listDefs(root: string): NetworkDef[] {
  let names: string[] = [];
  try {
    names = readdirSync(defsDir(root)).filter((n) => n.endsWith('.json'));
  } catch {
    /* none yet */
  }
  const out = [defaultNetwork()];
  for (const n of names.sort()) {
    const d = readJson<NetworkDef>(join(defsDir(root), n));
    if (d?.name && d.subnet) out.push(d);
  }
  return out;
}

/** By name, or id prefix. */
export function findDef(root: string, ref: string): NetworkDef | null {
  const all = listDefs(root);
  return all.find((d) => d.name === ref) ?? (ref.length >= 3 ? all.filter((d) => d.id.startsWith(ref)) : []).at(0) ?? null;
}

export function saveDef(root: string, d: NetworkDef): void {
  mkdirSync(defsDir(root), { recursive: true, mode: 0o700 });
  const fd = openSync(join(defsDir(root), `${d.name}.json`), 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(d, null, 2) + '\n');
  } finally {
    closeSync(fd);
  }
}

export function removeDef(root: string, name: string): void {
  rmSync(join(defsDir(root), `${name}.json`), { force: true });
}

export function newNetworkId(): string {
  return randomBytes(32).toString('hex');
}

// --- host-wide runtime registry ---

export interface BridgeRecord {
  bridge: string;
  subnet: string;
  gateway: string;
  network: string;
  networkId: string;
  /** the last address handed out, for round-robin allocation */
  last?: string;
}

export function readBridge(bridge: string): BridgeRecord | null {
  return readJson<BridgeRecord>(join(netRunDir(), 'bridges', `${bridge}.json`));
}

export function writeBridge(b: BridgeRecord): void {
  writeAtomic(join(netRunDir(), 'bridges', `${b.bridge}.json`), b);
}

export function removeBridgeRecord(bridge: string): void {
  rmSync(join(netRunDir(), 'bridges', `${bridge}.json`), { force: true });
  rmSync(join(netRunDir(), 'endpoints', bridge), { recursive: true, force: true });
}

export function listBridges(): BridgeRecord[] {
  let names: string[] = [];
  try {
    names = readdirSync(join(netRunDir(), 'bridges')).filter((n) => n.endsWith('.json'));
  } catch {
    /* none */
  }
  return names.map((n) => readJson<BridgeRecord>(join(netRunDir(), 'bridges', n))).filter((b): b is BridgeRecord => b !== null);
}

function endpointPath(bridge: string, ip: string): string {
  return join(netRunDir(), 'endpoints', bridge, ip);
}

/** Claims IP on BRIDGE: false when the address is taken (O_EXCL). */
export function claimEndpoint(e: Endpoint): boolean {
  mkdirSync(join(netRunDir(), 'endpoints', e.bridge), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(endpointPath(e.bridge, e.ip), 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, JSON.stringify(e, null, 2) + '\n');
  } finally {
    closeSync(fd);
  }
  return true;
}

export function updateEndpoint(e: Endpoint): void {
  writeAtomic(endpointPath(e.bridge, e.ip), e);
}

export function removeEndpoint(e: Pick<Endpoint, 'bridge' | 'ip'>): void {
  rmSync(endpointPath(e.bridge, e.ip), { force: true });
}

export function listEndpoints(bridge?: string): Endpoint[] {
  const base = join(netRunDir(), 'endpoints');
  let bridges: string[] = [];
  try {
    bridges = bridge ? [bridge] : readdirSync(base);
  } catch {
    return [];
  }
  const out: Endpoint[] = [];
  for (const b of bridges) {
    let ips: string[] = [];
    try {
      ips = readdirSync(join(base, b)).filter((n) => !n.includes('.tmp-'));
    } catch {
      continue;
    }
    for (const ip of ips) {
      const e = readJson<Endpoint>(join(base, b, ip));
      // A claim being written reads as empty: it belongs to a live process; count it as used.
      out.push(e ?? ({ ip, bridge: b, network: '', networkId: '', root: '', containerId: '', hostname: '', aliases: [], veth: '', ifname: '', owner: { pid: 0, start: -1 }, ports: [], extraHosts: [], created: '' } as Endpoint));
    }
  }
  return out;
}

export function readForwarding(): string | null {
  try {
    return readFileSync(join(netRunDir(), 'forwarding'), 'utf8').trim();
  } catch {
    return null;
  }
}

export function writeForwarding(v: string | null): void {
  if (v === null) rmSync(join(netRunDir(), 'forwarding'), { force: true });
  else writeFileSync(join(netRunDir(), 'forwarding'), v + '\n');
}
