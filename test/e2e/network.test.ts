// Networking (issue 7) against the real kernel: bridges, veths, nftables, /etc files.
// Traffic goes only to 127.0.0.1, the host's own address and containers on tsrun's
// own bridges. Every wait is bounded. After each test, nothing this test's TSRUN_ROOT
// made is left: no address in the host-wide registry, no bridge of its networks, no
// rule naming them (other engineers' containers may be on tsrun0 meanwhile, so the
// checks look only at what this test made).
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { expectExit, useSandbox, type Sandbox } from '../helpers/sandbox.js';
import { waitForOutput } from '../helpers/tsrun.js';
import { endpointFiles, type EndpointFile } from '../helpers/leaks.js';
import { hostAddress, httpGet, networkLeaks, ruleset } from '../helpers/network.js';

/** The ruleset without tsrun's own table (which other tests' containers may need right now). */
function withoutTsrunTable(text: string): string {
  return text.replace(/^table ip tsrun \{[\s\S]*?^\}\n?/m, '');
}

/** A port nobody listens on right now (the kernel's pick), for -p. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '0.0.0.0', r));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** A busybox httpd serving `text` at / in a container; `ready` once it listens. */
function startWeb(sb: Sandbox, text: string, flags: string[]) {
  const www = sb.mkdir(`www-${Math.random().toString(16).slice(2, 8)}`);
  writeFileSync(join(www, 'index.html'), text);
  const sub = sb.spawn(['run', '--rm', '--rootfs', sb.rootfs(), '-v', `${www}:/www:ro`, ...flags, '--', 'sh', '-c',
    // sh is PID 1 and traps TERM, so stopping tsrun stops the container; 60 s at most.
    // The trap is set before "ready": PID 1 of a PID namespace ignores a signal it has no
    // handler for, so a TERM sent between "ready" and a later trap would be lost.
    'trap "exit 0" TERM; httpd -p 80 -h /www; echo ready; sleep 60 & wait'], { timeoutMs: 90_000 });
  return {
    sub,
    ready: () => waitForOutput(sub, /ready/, 20_000),
    async stop() {
      sub.kill('SIGTERM');
      const r = await sub;
      return r;
    },
  };
}

describe('tsrun networking', () => {
  const sb = useSandbox();
  const made = { bridges: [] as string[], veths: [] as string[], ports: [] as number[] };

  afterEach(async () => {
    // vitest runs afterEach hooks in reverse order: this one before the sandbox's own checks.
    await sb.tsrun(['network', 'prune', '-f']);
    const left = networkLeaks(sb, made);
    made.bridges = [];
    made.veths = [];
    made.ports = [];
    expect(left, 'network objects this test left behind').toEqual([]);
  });

  const noteEndpoints = (): EndpointFile[] => {
    const mine = endpointFiles().filter((e) => e.root === sb.root);
    for (const e of mine) {
      if (!made.bridges.includes(e.bridge)) made.bridges.push(e.bridge);
      made.veths.push(e.veth);
    }
    return mine;
  };

  it('--network none has only lo', async () => {
    const r = await sb.run(['sh', '-c', 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'], ['--network', 'none']);
    expectExit(r, 0);
    expect(r.stdout.trim().split('\n')).toEqual(['lo']);
  });

  it('--network host sees the host\'s interfaces', async () => {
    const host = readdirSync('/sys/class/net').filter((n) => !/^(vtr|tsr)/.test(n)); // veths come and go with other tests
    const r = await sb.run(['sh', '-c', 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'], ['--network', 'host']);
    expectExit(r, 0);
    const inside = r.stdout.trim().split('\n');
    for (const n of host) expect(inside).toContain(n);
  });

  it('the default bridge: eth0 with an address on tsrun0, a default route, /etc files from the flags', async () => {
    const r = await sb.run(['sh', '-c', 'ip addr show eth0; ip route; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; cat /etc/hostname; hostname'],
      ['--hostname', 'box1', '--dns', '192.0.2.53', '--dns-search', 'corp.example', '--add-host', 'db.local:10.9.8.7']);
    expectExit(r, 0);
    const [ipInfo, resolv, hosts, names] = r.stdout.split('---\n');
    const addr = /inet (10\.123\.\d+\.\d+)\/16/.exec(ipInfo!)?.[1];
    expect(addr, ipInfo).toBeDefined();
    expect(ipInfo).toMatch(/default via 10\.123\.0\.1 dev eth0/);
    expect(resolv).toMatch(/^nameserver 192\.0\.2\.53$/m);
    expect(resolv).toMatch(/^search corp\.example$/m);
    expect(hosts).toMatch(/^127\.0\.0\.1\tlocalhost$/m);
    expect(hosts).toMatch(/^10\.9\.8\.7\tdb\.local$/m);
    expect(hosts).toContain(`${addr}\tbox1`);
    expect(names!.trim().split('\n')).toEqual(['box1', 'box1']);
  });

  it('resolv.conf is the host\'s without loopback nameservers', async () => {
    const r = await sb.run(['cat', '/etc/resolv.conf'], []);
    expectExit(r, 0);
    const hostServers = readFileSync('/etc/resolv.conf', 'utf8').split('\n').filter((l) => /^nameserver\s/.test(l)).map((l) => l.split(/\s+/)[1]!);
    for (const s of hostServers) {
      if (/^127\.|^::1$/.test(s)) expect(r.stdout).not.toMatch(new RegExp(`^nameserver ${s.replace(/\./g, '\\.')}$`, 'm'));
      else expect(r.stdout).toMatch(new RegExp(`^nameserver ${s.replace(/\./g, '\\.')}$`, 'm'));
    }
  });

  it('containers on a user network reach each other by name and by alias; another network cannot reach them', async () => {
    expectExit(await sb.tsrun(['network', 'create', 'front']), 0);
    expectExit(await sb.tsrun(['network', 'create', 'back']), 0);
    const web = startWeb(sb, 'hello from web\n', ['--name', 'web', '--network', 'front', '--network-alias', 'www']);
    try {
      await web.ready();
      const ep = noteEndpoints().find((e) => e.name === 'web')!;
      expect(ep).toBeDefined();
      const r = await sb.run(['sh', '-c', 'timeout 10 wget -q -O- http://web/ && timeout 10 wget -q -O- http://www/'], ['--name', 'client', '--network', 'front']);
      expectExit(r, 0);
      expect(r.stdout).toBe('hello from web\nhello from web\n');
      // From the other network: the name is unknown there, and the address is not routed.
      const iso = await sb.run(['sh', '-c', `timeout 10 wget -q -O- http://web/ >/dev/null 2>&1; echo name=$?; timeout 4 wget -q -O- http://${ep.ip}/ 2>&1; echo ip=$?`], ['--network', 'back']);
      expectExit(iso, 0);
      expect(iso.stdout).toMatch(/name=[1-9]/);
      expect(iso.stdout).toMatch(/ip=[1-9]/);
      expect(iso.stdout).not.toContain('hello from web');
      noteEndpoints();
    } finally {
      await web.stop();
    }
  });

  it('-p publishes a busybox httpd on 127.0.0.1 and the host\'s address; tsrun port lists it', async () => {
    const port = await freePort();
    made.ports.push(port);
    const web = startWeb(sb, 'published\n', ['--name', 'pub', '-p', `${port}:80`]);
    try {
      await web.ready();
      noteEndpoints();
      expect(await httpGet(`http://127.0.0.1:${port}/`)).toBe('published\n');
      expect(await httpGet(`http://${hostAddress()}:${port}/`)).toBe('published\n');
      const p = await sb.tsrun(['port', 'pub']);
      expectExit(p, 0);
      expect(p.stdout).toBe(`80/tcp -> 0.0.0.0:${port}\n`);
      const one = await sb.tsrun(['port', 'pub', '80/tcp']);
      expect(one.stdout).toBe(`0.0.0.0:${port}\n`);
    } finally {
      await web.stop();
    }
  });

  it('a port in use is a clear error and leaves no container behind', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '0.0.0.0', r));
    const port = (busy.address() as { port: number }).port;
    made.ports.push(port);
    try {
      const r = await sb.run(['true'], ['-p', `${port}:80`]);
      expectExit(r, 125);
      expect(r.stderr).toMatch(new RegExp(`cannot publish 0\\.0\\.0\\.0:${port}/tcp: the port is already in use`));
      expect(endpointFiles().filter((e) => e.root === sb.root)).toEqual([]);
      expect(readdirSync(join(sb.root, 'run', 'containers'))).toEqual([]);
    } finally {
      busy.close();
    }
  });

  it('container:NAME joins the other container\'s network namespace', async () => {
    expectExit(await sb.tsrun(['network', 'create', 'pod']), 0);
    const web = startWeb(sb, 'same netns\n', ['--name', 'podweb', '--network', 'pod']);
    try {
      await web.ready();
      const ep = noteEndpoints().find((e) => e.name === 'podweb')!;
      const r = await sb.run(['sh', '-c', 'ip addr show eth0; timeout 10 wget -q -O- http://127.0.0.1/'], ['--network', 'container:podweb']);
      expectExit(r, 0);
      expect(r.stdout).toContain(`inet ${ep.ip}/`);
      expect(r.stdout).toContain('same netns');
    } finally {
      await web.stop();
    }
  });

  it('addresses are reused after containers exit, never while held (a /29 has 5: one held, 8 come and go)', async () => {
    expectExit(await sb.tsrun(['network', 'create', '--subnet', '10.201.7.0/29', 'tiny']), 0);
    const holder = startWeb(sb, 'x', ['--name', 'holder', '--network', 'tiny']);
    try {
      await holder.ready();
      const held = noteEndpoints().find((e) => e.name === 'holder')!.ip;
      const seen: string[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await sb.run(['sh', '-c', 'ip addr show eth0 | grep -o "inet [0-9.]*"'], ['--network', 'tiny']);
        expectExit(r, 0);
        seen.push(r.stdout.trim().replace('inet ', ''));
      }
      for (const ip of seen) expect(ip).toMatch(/^10\.201\.7\.[2-6]$/);
      expect(seen).not.toContain(held);
      // 8 runs over the 4 free addresses: each was handed out again after its container ended.
      expect(new Set(seen).size).toBe(4);
    } finally {
      await holder.stop();
    }
  });

  it('30 containers started at once on one network all get distinct addresses', async () => {
    expectExit(await sb.tsrun(['network', 'create', 'many']), 0);
    const shared = sb.mkdir('shared');
    const N = 30;
    // Each container writes its address, then waits (at most 60 s) until all N have: so
    // all N hold their addresses at the same time, and distinct means something.
    const script = `ip=$(ip addr show eth0 | grep -o "inet [0-9.]*" | cut -d" " -f2); touch /s/$ip; echo $ip; i=0; while [ $(ls /s | wc -l) -lt ${N} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`;
    const runs = Array.from({ length: N }, () => sb.run(['sh', '-c', script], ['--network', 'many', '-v', `${shared}:/s`], { timeoutMs: 150_000 }));
    const results = await Promise.all(runs);
    for (const r of results) expectExit(r, 0);
    const ips = results.map((r) => r.stdout.trim());
    expect(new Set(ips).size).toBe(N);
    expect(readdirSync(shared).length).toBe(N);
  }, 180_000);

  it('a tsrun killed with -9: the next tsrun command releases its veth, address and rules; prune the idle bridge', async () => {
    expectExit(await sb.tsrun(['network', 'create', 'gc']), 0);
    const port = await freePort();
    made.ports.push(port);
    const web = startWeb(sb, 'x', ['--name', 'victim', '--network', 'gc', '-p', `${port}:80`]);
    await web.ready();
    const ep = noteEndpoints().find((e) => e.name === 'victim')!;
    expect(existsSync(`/sys/class/net/${ep.veth}`)).toBe(true);
    expect(ruleset()).toContain(`dport ${port} dnat to ${ep.ip}:80`);
    web.sub.kill('SIGKILL');
    // Its container still holds tsrun's stdout, so the subprocess ends only once the GC kills it.
    for (let i = 0; i < 100 && web.sub.exitCode === null && web.sub.signalCode === null; i++) await new Promise((r) => setTimeout(r, 50));
    expect(endpointFiles().some((e) => e.root === sb.root)).toBe(true); // nobody released it
    expectExit(await sb.run(['true'], ['--network', 'none']), 0); // the next command collects
    await web.sub;
    expect(endpointFiles().filter((e) => e.root === sb.root)).toEqual([]);
    expect(existsSync(`/sys/class/net/${ep.veth}`)).toBe(false);
    expect(ruleset()).not.toContain(`dport ${port} dnat`);
    expect(readdirSync(`/sys/class/net/${ep.bridge}/brif`)).toEqual([]); // idle, documented as kept until prune
    expectExit(await sb.tsrun(['network', 'prune']), 0);
    expect(existsSync(`/sys/class/net/${ep.bridge}`)).toBe(false);
  });

  it('network prune leaves the host\'s firewall exactly as it was', async () => {
    const before = ruleset();
    const othersBefore = endpointFiles().some((e) => e.root !== sb.root);
    expectExit(await sb.tsrun(['network', 'create', 'fw1']), 0);
    expectExit(await sb.tsrun(['network', 'create', 'fw2']), 0);
    const port = await freePort();
    made.ports.push(port);
    const r = await sb.run(['sh', '-c', 'true'], ['--network', 'fw1', '-p', `${port}:80`]);
    expectExit(r, 0);
    const r2 = await sb.run(['true'], ['--network', 'fw2']);
    expectExit(r2, 0);
    const p = await sb.tsrun(['network', 'prune', '-f']);
    expectExit(p, 0);
    expect(p.stdout.split('\n').sort().filter(Boolean)).toEqual(['fw1', 'fw2']);
    const after = ruleset();
    expect(withoutTsrunTable(after)).toBe(withoutTsrunTable(before));
    // With no other tsrun's container on the host, not even tsrun's table is left.
    if (!othersBefore && !endpointFiles().some((e) => e.root !== sb.root)) expect(after).toBe(before);
    const ls = await sb.tsrun(['network', 'ls']);
    expect(ls.stdout).not.toMatch(/fw1|fw2/);
  });

  it('network create refuses overlapping subnets; rm refuses a network in use', async () => {
    expectExit(await sb.tsrun(['network', 'create', '--subnet', '10.202.0.0/16', 'a']), 0);
    const dup = await sb.tsrun(['network', 'create', '--subnet', '10.202.5.0/24', 'b']);
    expectExit(dup, 125);
    expect(dup.stderr).toMatch(/overlaps network "a"/);
    const host = await sb.tsrun(['network', 'create', '--subnet', `${hostAddress().split('.').slice(0, 3).join('.')}.0/24`, 'c']);
    expectExit(host, 125);
    expect(host.stderr).toMatch(/overlaps the host's route/);
    const web = startWeb(sb, 'x', ['--name', 'busy', '--network', 'a']);
    try {
      await web.ready();
      noteEndpoints();
      const rm = await sb.tsrun(['network', 'rm', 'a']);
      expectExit(rm, 125);
      expect(rm.stderr).toMatch(/active endpoints: busy/);
    } finally {
      await web.stop();
    }
    expectExit(await sb.tsrun(['network', 'rm', 'a']), 0);
  });
});
