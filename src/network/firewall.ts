// tsrun's packet rules: one nftables table, `ip tsrun`, rebuilt whole from the
// registry when what it must say changes, and deleted with tsrun's last bridge. Rebuilding in
// one `nft -f` transaction means no half-applied state is ever visible, and tsrun
// never edits a rule it did not make: the host's own tables are not touched, so
// deleting ours leaves `nft list ruleset` exactly as it was.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { BridgeRecord, Endpoint } from './registry.js';
import { cmd } from './exec.js';

export const TABLE = 'tsrun';

const q = (s: string): string => `"${s.replace(/[^A-Za-z0-9_.:-]/g, '')}"`;

/** The whole table for these bridges and endpoints, or null when nothing needs a rule. */
export function renderRuleset(bridges: BridgeRecord[], endpoints: Endpoint[]): string | null {
  if (bridges.length === 0) return null;
  const names = bridges.map((b) => q(b.bridge));
  const L: string[] = [];
  L.push(`table ip ${TABLE} {`);
  // Published ports. prerouting: traffic from other hosts (and from containers);
  // output: traffic this host makes itself, to 127.0.0.1 or its own addresses. fib
  // "type local" matches every address of the host without listing them.
  L.push('  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', '    fib daddr type local jump published', '  }');
  L.push('  chain output {', '    type nat hook output priority -100; policy accept;', '    fib daddr type local jump published', '  }');
  L.push('  chain published {');
  for (const e of endpoints) {
    for (const p of e.ports) {
      const dst = p.hostIp ? `ip daddr ${p.hostIp} ` : '';
      L.push(`    ${dst}${p.proto} dport ${p.hostPort} dnat to ${e.ip}:${p.containerPort}`);
    }
  }
  L.push('  }');
  L.push('  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;');
  for (const b of bridges) {
    // Outbound NAT: the subnet is private, replies must come back to the host.
    L.push(`    ip saddr ${b.subnet} oifname != ${q(b.bridge)} masquerade`);
    // 127.0.0.1:PORT DNATed to a container keeps source 127.0.0.1, which the container
    // cannot answer; the kernel routes it only with route_localnet=1 on the bridge.
    L.push(`    oifname ${q(b.bridge)} ip saddr 127.0.0.0/8 masquerade`);
  }
  L.push('  }');
  L.push('  chain input {', '    type filter hook input priority filter; policy accept;');
  // route_localnet=1 would also let a container reach the host's 127.0.0.1 services
  // (CVE-2020-8558, the kube-proxy bug): drop what arrives from a bridge for 127/8,
  // except replies of connections DNATed from 127.0.0.1, which conntrack maps back there.
  L.push(`    iifname { ${names.join(', ')} } ip daddr 127.0.0.0/8 ct state != { established, related } drop`);
  L.push('  }');
  L.push('  chain forward {', '    type filter hook forward priority filter; policy accept;');
  // Isolation: nothing is routed from one tsrun network to another.
  if (bridges.length > 1) {
    for (const b of bridges) {
      const others = bridges.filter((o) => o !== b).map((o) => q(o.bridge));
      L.push(`    iifname ${q(b.bridge)} oifname { ${others.join(', ')} } drop`);
    }
  }
  L.push('  }');
  L.push('}');
  return L.join('\n') + '\n';
}

/**
 * Makes the kernel's table match the registry: replace it in one transaction, or delete
 * it. `applied` remembers the last text loaded: a container with no published port on
 * an existing bridge changes nothing, and skipping nft then saves 10-20 ms per run.
 * `force` (network prune) reloads regardless, in case someone flushed the ruleset.
 */
export function applyRuleset(bridges: BridgeRecord[], endpoints: Endpoint[], applied: string, force = false): void {
  const text = renderRuleset(bridges, endpoints);
  let last: string | null = null;
  try {
    last = readFileSync(applied, 'utf8');
  } catch {
    /* never applied, or deleted */
  }
  if (!force && (text ?? '') === (last ?? '')) return;
  rmSync(applied, { force: true }); // a failure below must not leave a stale memory
  if (text === null) {
    // "add" first: deleting a table that is not there is an error; this is one transaction.
    cmd('nft', ['-f', '-'], 'no tsrun bridge is left: remove tsrun\'s table, the host\'s firewall is as before', `add table ip ${TABLE}\ndelete table ip ${TABLE}\n`);
    return;
  }
  // "add table" makes the delete safe when it does not exist; the file is one transaction.
  const script = `add table ip ${TABLE}\ndelete table ip ${TABLE}\n${text}`;
  cmd('nft', ['-f', '-'], `rebuild tsrun's table: masquerade for ${bridges.length} bridge(s), ${endpoints.reduce((n, e) => n + e.ports.length, 0)} published port(s), isolation between networks`, script);
  writeFileSync(applied, text);
}
