// Reaching containers from the host in the network e2e files: only 127.0.0.1, the
// host's own addresses and tsrun's bridges are ever contacted, with bounded waits.
import { networkInterfaces } from 'node:os';

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
