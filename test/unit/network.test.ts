import { describe, expect, it } from 'vitest';
import { broadcast, contains, intToIp, ipToInt, nextFree, overlaps, parseSubnet } from '../../src/network/ipam.js';
import { exposedToPublish, parseExpose, parsePublish } from '../../src/network/ports.js';
import { hostsFile, parseAddHost, resolvConf } from '../../src/network/files.js';
import { renderRuleset } from '../../src/network/firewall.js';
import type { BridgeRecord, Endpoint } from '../../src/network/registry.js';
import { TsrunError } from '../../src/errors.js';

describe('ipam', () => {
  it('converts addresses both ways, including the top bit', () => {
    expect(ipToInt('10.123.0.1')).toBe(0x0a7b0001);
    expect(intToIp(ipToInt('255.255.255.254'))).toBe('255.255.255.254');
    expect(() => ipToInt('10.0.0.256')).toThrow(TsrunError);
  });

  it('parses subnets and refuses host bits and silly prefixes', () => {
    const s = parseSubnet('10.124.0.0/24');
    expect(intToIp(broadcast(s))).toBe('10.124.0.255');
    expect(contains(s, ipToInt('10.124.0.77'))).toBe(true);
    expect(contains(s, ipToInt('10.124.1.1'))).toBe(false);
    expect(() => parseSubnet('10.124.0.1/24')).toThrow(/host bits/);
    expect(() => parseSubnet('10.0.0.0/31')).toThrow(/prefix/);
    expect(overlaps(parseSubnet('10.0.0.0/8'), parseSubnet('10.124.0.0/16'))).toBe(true);
    expect(overlaps(parseSubnet('10.123.0.0/16'), parseSubnet('10.124.0.0/16'))).toBe(false);
  });

  it('hands out host addresses round robin, never the gateway, network or broadcast', () => {
    const s = parseSubnet('10.9.0.0/29'); // .1 gateway, .2-.6 usable, .7 broadcast
    const gw = ipToInt('10.9.0.1');
    const used = new Set<number>();
    const got: string[] = [];
    let last: number | undefined;
    for (let i = 0; i < 5; i++) {
      const ip = nextFree(s, gw, used, last)!;
      used.add(ip);
      last = ip;
      got.push(intToIp(ip));
    }
    expect(got).toEqual(['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
    expect(nextFree(s, gw, used, last)).toBeNull();
    used.delete(ipToInt('10.9.0.3'));
    expect(intToIp(nextFree(s, gw, used, last)!)).toBe('10.9.0.3'); // wraps around to the freed one
  });
});

describe('-p parsing', () => {
  it('accepts docker\'s forms', () => {
    expect(parsePublish('8080:80')).toEqual({ hostIp: '', hostPort: 8080, containerPort: 80, proto: 'tcp' });
    expect(parsePublish('127.0.0.1:8080:80/udp')).toEqual({ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, proto: 'udp' });
    expect(parsePublish('80')).toEqual({ hostIp: '', hostPort: 0, containerPort: 80, proto: 'tcp' });
    expect(parsePublish('127.0.0.1::80')).toEqual({ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, proto: 'tcp' });
    expect(exposedToPublish(['80/tcp', '53/udp']).map((p) => `${p.containerPort}/${p.proto}`)).toEqual(['80/tcp', '53/udp']);
  });

  it('refuses bad ones with a usage error', () => {
    for (const bad of ['0:80', '8080:70000', '8080:80/sctp', 'a:b', '8000-8001:80', '1.2.3:8080:80', '1:2:3:4']) {
      expect(() => parsePublish(bad), bad).toThrow(TsrunError);
    }
  });
});

describe('--expose parsing', () => {
  it('takes a port, a protocol and ranges, as ExposedPorts keys', () => {
    expect(parseExpose('80')).toEqual(['80/tcp']);
    expect(parseExpose('53/udp')).toEqual(['53/udp']);
    expect(parseExpose('7000-7002/udp')).toEqual(['7000/udp', '7001/udp', '7002/udp']);
    expect(parseExpose('65535')).toEqual(['65535/tcp']);
  });

  it('refuses what is not a port or range with a usage error', () => {
    for (const bad of ['0', '65536', '80/sctp', '90-80', 'http', '1-2-3', '', '80/']) {
      expect(() => parseExpose(bad), bad).toThrow(/--expose/);
    }
  });
});

describe('/etc files', () => {
  it('drops loopback nameservers from the host\'s resolv.conf, and says so', () => {
    const host = 'nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0 trust-ad\n';
    const out = resolvConf(host, {});
    expect(out).toMatch(/^nameserver 10\.0\.0\.2$/m);
    expect(out).not.toMatch(/^nameserver 127/m);
    expect(out).toMatch(/^search corp\.example$/m);
    expect(out).toMatch(/^options edns0 trust-ad$/m);
    expect(out).toMatch(/dropped loopback nameservers.*127\.0\.0\.53/);
  });

  it('--dns and --dns-search replace the host\'s; only-loopback hosts get no nameserver', () => {
    const out = resolvConf('nameserver 127.0.0.53\nsearch a\n', { dns: ['192.0.2.53'], dnsSearch: ['b.example'] });
    expect(out).toMatch(/^nameserver 192\.0\.2\.53$/m);
    expect(out).toMatch(/^search b\.example$/m);
    expect(resolvConf('nameserver 127.0.0.53\n', {})).not.toMatch(/^nameserver/m);
    expect(resolvConf('nameserver 127.0.0.53\n', { hostNetwork: true })).toMatch(/^nameserver 127\.0\.0\.53$/m);
  });

  it('hosts: localhost, --add-host, self, peers', () => {
    const t = hostsFile({ ip: '10.1.0.2', names: ['abc', 'web', 'web'] }, [parseAddHost('db:10.9.9.9')], [{ ip: '10.1.0.3', names: ['cli', 'alias'] }]);
    const lines = t.trim().split('\n');
    expect(lines[0]).toBe('127.0.0.1\tlocalhost');
    expect(lines).toContain('10.9.9.9\tdb');
    expect(lines).toContain('10.1.0.2\tabc web');
    expect(lines.at(-1)).toBe('10.1.0.3\tcli alias');
    expect(() => parseAddHost('nohost')).toThrow(TsrunError);
  });
});

describe('firewall', () => {
  const br = (bridge: string, subnet: string): BridgeRecord => ({ bridge, subnet, gateway: '', network: bridge, networkId: bridge });
  const ep = (bridge: string, ip: string, ports: Endpoint['ports']): Endpoint =>
    ({ bridge, ip, ports, network: '', networkId: '', root: '', containerId: 'c', hostname: 'h', aliases: [], veth: 'v', ifname: 'eth0', owner: { pid: 1, start: 1 }, extraHosts: [], created: '' });

  it('has no table at all when no bridge is left', () => {
    expect(renderRuleset([], [])).toBeNull();
  });

  it('masquerades each subnet, DNATs published ports, isolates networks pairwise', () => {
    const text = renderRuleset(
      [br('tsrun0', '10.123.0.0/16'), br('tsr-a', '10.124.0.0/24')],
      [ep('tsr-a', '10.124.0.2', [{ hostIp: '', hostPort: 8080, containerPort: 80, proto: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, proto: 'udp' }])],
    )!;
    expect(text).toMatch(/^table ip tsrun \{/);
    expect(text).toContain('ip saddr 10.123.0.0/16 oifname != "tsrun0" masquerade');
    expect(text).toContain('ip saddr 10.124.0.0/24 oifname != "tsr-a" masquerade');
    expect(text).toContain('tcp dport 8080 dnat to 10.124.0.2:80');
    expect(text).toContain('ip daddr 127.0.0.1 udp dport 5353 dnat to 10.124.0.2:53');
    expect(text).toContain('iifname "tsrun0" oifname { "tsr-a" } drop');
    expect(text).toContain('iifname "tsr-a" oifname { "tsrun0" } drop');
    expect(text).toMatch(/iifname \{ "tsrun0", "tsr-a" \} ip daddr 127\.0\.0\.0\/8 ct state != \{ established, related \} drop/);
  });
});
