// Reaching containers from the host in the network e2e files: only 127.0.0.1, the
// host's own addresses and tsrun's bridges are ever contacted, with bounded waits.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { endpointFiles } from './leaks.js';
import type { Sandbox } from './sandbox.js';

/** The host's first non-loopback IPv4 address that is not on one of tsrun's bridges or veths. */
export function hostAddress(): string {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (/^(lo|tsrun|tsr-|vtr)/.test(name)) continue;
    const a = addrs?.find((x) => x.family === 'IPv4' && !x.internal);
    if (a) return a.address;
  }
  throw new Error('this host has no non-loopback IPv4 address');
}

/** GET URL's body, giving up after 5 s. */
export async function httpGet(url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return await r.text();
}

/** The host's whole nftables ruleset, as `nft list ruleset` prints it. */
export function ruleset(): string {
  return execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

/** Bridges of the networks defined under ROOT. */
export function bridgesOf(root: string): string[] {
  try {
    return readdirSync(join(root, 'networks')).map((f) => (JSON.parse(readFileSync(join(root, 'networks', f), 'utf8')) as { bridge: string }).bridge);
  } catch {
    return [];
  }
}

/**
 * What the sandbox's TSRUN_ROOT left on the host's network: addresses in the host-wide
 * registry, bridges of its networks (and `made.bridges`) with their nft rules, the veths
 * and DNAT ports a test noted. Only this root's objects: others may be in use meanwhile.
 */
export function networkLeaks(sb: Sandbox, made: { bridges: string[]; veths: string[]; ports: number[] }): string[] {
  const left: string[] = [];
  const all = endpointFiles();
  for (const e of all) if (e.root === sb.root) left.push(`address ${e.ip} on ${e.bridge} for ${e.containerId.slice(0, 12)}`);
  // tsrun0 is shared with every other tsrun on the host: it may rightly stay while others use it.
  const shared = (b: string): boolean => all.some((e) => e.bridge === b && e.root !== sb.root);
  const rules = ruleset();
  for (const b of new Set([...made.bridges, ...bridgesOf(sb.root)])) {
    if (shared(b)) continue;
    if (existsSync(`/sys/class/net/${b}`)) left.push(`bridge ${b}`);
    if (rules.includes(`"${b}"`)) left.push(`nft rule naming ${b}`);
  }
  for (const v of made.veths) if (existsSync(`/sys/class/net/${v}`)) left.push(`veth ${v}`);
  for (const p of made.ports) if (new RegExp(`dport ${p} dnat`).test(rules)) left.push(`nft DNAT for port ${p}`);
  return left;
}
