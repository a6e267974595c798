// Networking (issue 7), the parts network.test.ts does not cover: -P and --expose, UDP
// published ports, and `tsrun network connect|disconnect`. Real bin/tsrun, real kernel.
// Traffic goes only to 127.0.0.1, the host's own address and containers on tsrun's
// bridges; every wait is bounded. This file never runs `network prune` (tsrun0 and
// tsrun's table are host-wide, other engineers' containers use them): each test removes
// the containers and networks it made, then checks that nothing of its own is left.
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildImage, busyboxTarFiles, hostArch, makeTar, type BuiltImage, type TarFile } from '../helpers/images.js';
import { expectExit, useSandbox, type Sandbox } from '../helpers/sandbox.js';
import { commandsRun } from '../helpers/commands.js';
import { waitForOutput } from '../helpers/tsrun.js';
import { endpointFiles, type EndpointFile } from '../helpers/leaks.js';
import { alive, until } from '../helpers/wait.js';
import { hostAddress, httpGet, networkLeaks, ruleset } from '../helpers/network.js';

/** conntrack(8): tsrun deletes stale UDP flows with it; without it that part is not checked. */
const hasConntrack = commandsRun(['conntrack', '--version']);

/**
 * One UDP request/answer from the host, retried a few times (UDP may drop a datagram):
 * at most 5 tries of 2 s. Each try uses a fresh socket (a fresh source port, so a fresh
 * conntrack flow) unless KEEP is given: a client that keeps its source port.
 */
async function udpAsk(host: string, port: number, text: string, keep?: Socket): Promise<string> {
  let last: unknown;
  for (let i = 0; i < 5; i++) {
    const s = keep ?? createSocket('udp4');
    try {
      return await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no UDP answer from ${host}:${port} within 2 s`)), 2000);
        s.once('message', (m) => {
          clearTimeout(t);
          resolve(m.toString());
        });
        s.once('error', (e) => {
          clearTimeout(t);
          reject(e);
        });
        s.send(text, port, host);
      });
    } catch (e) {
      last = e;
    } finally {
      s.removeAllListeners('message');
      s.removeAllListeners('error');
      if (!keep) s.close();
    }
  }
  throw last;
}

/** An oci-archive holding IMAGE as REF, for `tsrun load`. */
async function ociArchive(path: string, image: BuiltImage, ref: string): Promise<void> {
  const files: TarFile[] = [
    { name: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    {
      name: 'index.json',
      content: JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.data.length, annotations: { 'io.containerd.image.name': ref } }],
      }),
    },
    { name: 'blobs/', type: 'directory' },
    { name: 'blobs/sha256/', type: 'directory' },
    ...[image.manifest, image.config, ...image.layers].map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, content: b.data })),
  ];
  writeFileSync(path, await makeTar(files));
}

/** Loads a busybox image that exposes PORTS into the sandbox's root and returns its reference. */
async function loadExposingImage(sb: Sandbox, ports: string[]): Promise<string> {
  const ref = 'np2e/exposer:1';
  const image = await buildImage({
    architecture: hostArch(),
    layers: [busyboxTarFiles(), [{ name: 'www/', type: 'directory' }, { name: 'www/index.html', content: 'from the image\n' }]],
    config: { ExposedPorts: Object.fromEntries(ports.map((p) => [p, {}])) },
  });
  const file = join(sb.dir, 'exposer.tar');
  await ociArchive(file, image, ref);
  expectExit(await sb.tsrun(['load', '-i', file]), 0);
  return ref;
}

/** `tsrun port NAME` as [{ ctr: '80/tcp', host: 12345 }]. */
function parsePort(out: string): Array<{ ctr: string; hostIp: string; host: number }> {
  return out.trim().split('\n').filter(Boolean).map((l) => {
    const m = /^(\d+\/(?:tcp|udp)) -> ([\d.]+):(\d+)$/.exec(l);
    if (!m) throw new Error(`unexpected tsrun port line: ${l}`);
    return { ctr: m[1]!, hostIp: m[2]!, host: Number(m[3]) };
  });
}

// sh is PID 1 and traps TERM, so stopping tsrun (or `rm -f`) stops the container; 90 s at most.
// The trap comes before "ready": PID 1 of a PID namespace ignores a signal it has no
// handler for, so a TERM sent just after "ready" but before the trap would be lost.
const SERVE = (port: number): string => `trap "exit 0" TERM; httpd -p ${port} -h /www; echo ready; sleep 90 & wait`;

describe('published ports and connect/disconnect', () => {
  const sb = useSandbox();
  const made = { veths: [] as string[], ports: [] as number[], bridges: [] as string[] };

  afterEach(async () => {
    // Runs before the sandbox's own checks (vitest runs afterEach hooks in reverse).
    // Whatever a failed test left running goes first, then the networks it made.
    const ps = await sb.tsrun(['ps', '-aq', '--no-trunc']);
    const ids = ps.stdout.split('\n').filter(Boolean);
    if (ids.length) await sb.tsrun(['rm', '-f', ...ids]);
    let defs: string[] = [];
    try {
      defs = readdirSync(join(sb.root, 'networks')).map((f) => {
        const d = JSON.parse(readFileSync(join(sb.root, 'networks', f), 'utf8')) as { name: string; bridge: string };
        made.bridges.push(d.bridge);
        return d.name;
      });
    } catch {
      /* none made */
    }
    if (defs.length) expectExit(await sb.tsrun(['network', 'rm', ...defs]), 0);
    const left = networkLeaks(sb, made);
    made.veths = [];
    made.ports = [];
    made.bridges = [];
    expect(left, 'network objects this test left behind').toEqual([]);
  });

  const mine = (): EndpointFile[] => {
    const eps = endpointFiles().filter((e) => e.root === sb.root);
    for (const e of eps) if (!made.veths.includes(e.veth)) made.veths.push(e.veth);
    return eps;
  };

  it('-P publishes every port the image exposes, plus --expose\'s, each on its own free host port; an explicit -p wins', async () => {
    const ref = await loadExposingImage(sb, ['80/tcp', '81/tcp', '8125/udp']);
    // 81 is also published by hand: -P must not add a second, random binding for it.
    const fixed = sb.spawn(['run', '--rm', '--name', 'pall', '-P', '--expose', '8080', '-p', '127.0.0.1::81', ref, 'sh', '-c',
      `httpd -p 8080 -h /www; ${SERVE(80)}`], { timeoutMs: 60_000 });
    try {
      await waitForOutput(fixed, /ready/, 30_000);
      const p = await sb.tsrun(['port', 'pall']);
      expectExit(p, 0);
      const maps = parsePort(p.stdout);
      made.ports.push(...maps.map((m) => m.host));
      expect(maps.map((m) => m.ctr).sort()).toEqual(['8080/tcp', '80/tcp', '81/tcp', '8125/udp'].sort());
      for (const m of maps) expect(m.host).toBeGreaterThan(0);
      expect(new Set(maps.map((m) => `${m.host}/${m.ctr.split('/')[1]}`)).size).toBe(4);
      expect(maps.find((m) => m.ctr === '81/tcp')!.hostIp).toBe('127.0.0.1');
      const web = maps.find((m) => m.ctr === '80/tcp')!;
      const alt = maps.find((m) => m.ctr === '8080/tcp')!;
      expect(web.hostIp).toBe('0.0.0.0');
      // The random ports are really the container's: through 127.0.0.1 and the host's address.
      expect(await httpGet(`http://127.0.0.1:${web.host}/`)).toBe('from the image\n');
      expect(await httpGet(`http://${hostAddress()}:${web.host}/`)).toBe('from the image\n');
      expect(await httpGet(`http://127.0.0.1:${alt.host}/`)).toBe('from the image\n');
      const one = await sb.tsrun(['port', 'pall', '80/tcp']);
      expectExit(one, 0);
      expect(one.stdout).toBe(`0.0.0.0:${web.host}\n`);
      const ep = mine().find((e) => e.name === 'pall')!;
      expect(ruleset()).toContain(`tcp dport ${web.host} dnat to ${ep.ip}:80`);
      expect(ruleset()).toContain(`udp dport ${maps.find((m) => m.ctr === '8125/udp')!.host} dnat to ${ep.ip}:8125`);
    } finally {
      fixed.kill('SIGTERM');
      expectExit(await fixed, 0);
    }
  }, 120_000);

  it('--expose alone publishes nothing; with -P on a plain rootfs it is the only source of ports; a bad one is a usage error', async () => {
    const www = sb.mkdir('www');
    writeFileSync(join(www, 'index.html'), 'exposed by flag\n');
    const quiet = sb.spawn(['run', '--rm', '--name', 'quiet', '--rootfs', sb.rootfs(), '-v', `${www}:/www:ro`, '--expose', '80', '--', 'sh', '-c', SERVE(80)], { timeoutMs: 60_000 });
    const loud = sb.spawn(['run', '--rm', '--name', 'loud', '--rootfs', sb.rootfs(), '-v', `${www}:/www:ro`, '-P', '--expose', '80/tcp', '--expose', '7000-7001/udp', '--', 'sh', '-c', SERVE(80)], { timeoutMs: 60_000 });
    try {
      await Promise.all([waitForOutput(quiet, /ready/, 30_000), waitForOutput(loud, /ready/, 30_000)]);
      const q = await sb.tsrun(['port', 'quiet']);
      expectExit(q, 0);
      expect(q.stdout).toBe('');
      const l = await sb.tsrun(['port', 'loud']);
      expectExit(l, 0);
      const maps = parsePort(l.stdout);
      made.ports.push(...maps.map((m) => m.host));
      expect(maps.map((m) => m.ctr).sort()).toEqual(['7000/udp', '7001/udp', '80/tcp']);
      const web = maps.find((m) => m.ctr === '80/tcp')!;
      expect(await httpGet(`http://127.0.0.1:${web.host}/`)).toBe('exposed by flag\n');
      expect(await httpGet(`http://${hostAddress()}:${web.host}/`)).toBe('exposed by flag\n');
      mine();
    } finally {
      quiet.kill('SIGTERM');
      loud.kill('SIGTERM');
      expectExit(await quiet, 0);
      expectExit(await loud, 0);
    }
    for (const bad of ['0', '80/sctp', '90-80', 'http']) {
      const r = await sb.run(['true'], ['-P', '--expose', bad]);
      expectExit(r, 125);
      expect(r.stderr).toContain(`--expose ${bad}:`);
    }
    expect(endpointFiles().filter((e) => e.root === sb.root)).toEqual([]);
  }, 120_000);

  it('-p HOST:CTR/udp reaches a UDP server in the container from 127.0.0.1 and the host\'s address; a client that keeps its source port reaches the next container on that port', async () => {
    // busybox-static has no UDP server (no udpsvd, no nc -u): the host's python3 runs in
    // the container from a read-only bind of the host's /usr (Debian's /lib and /lib64
    // are symlinks into /usr, made here in the test's own rootfs).
    const rootfs = sb.rootfs('udp');
    symlinkSync('usr/lib', join(rootfs, 'lib'));
    symlinkSync('usr/lib64', join(rootfs, 'lib64'));
    const srv = sb.writeFile('udp-echo.py', [
      'import signal, socket, sys',
      'signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # PID 1 has no default action for TERM',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      's.bind(("0.0.0.0", 5353))',
      's.settimeout(90)  # never outlives the test',
      'print("ready", flush=True)',
      'while True:',
      '    d, a = s.recvfrom(2048)',
      '    s.sendto(sys.argv[1].encode() + b" " + d, a)',
      '',
    ].join('\n'));
    // The kernel's pick of a free UDP port, for a fixed HOST:CTR mapping.
    const probe = createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '0.0.0.0', () => r()));
    const port = probe.address().port;
    probe.close();
    made.ports.push(port);
    const serve = (name: string) => sb.spawn(['run', '--rm', '--name', name, '--rootfs', rootfs, '-v', '/usr:/usr:ro', '-v', `${srv}:/udp-echo.py:ro`, '-p', `${port}:5353/udp`,
      '--', '/usr/bin/python3', '/udp-echo.py', name], { timeoutMs: 60_000 });
    // A client that keeps its source port across both containers, like a DNS or syslog client.
    const client = createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    try {
      const first = serve('udp1');
      let ep1: EndpointFile;
      try {
        await waitForOutput(first, /ready/, 30_000);
        ep1 = mine().find((e) => e.name === 'udp1')!;
        expect(ruleset()).toContain(`udp dport ${port} dnat to ${ep1.ip}:5353`);
        const p = await sb.tsrun(['port', 'udp1']);
        expect(p.stdout).toBe(`5353/udp -> 0.0.0.0:${port}\n`);
        expect(await udpAsk('127.0.0.1', port, 'via loopback')).toBe('udp1 via loopback');
        expect(await udpAsk(hostAddress(), port, 'via host address')).toBe('udp1 via host address');
        expect(await udpAsk('127.0.0.1', port, 'kept port', client)).toBe('udp1 kept port');
        // The same port number over TCP is not published.
        expect(ruleset()).not.toContain(`tcp dport ${port} dnat`);
      } finally {
        first.kill('SIGTERM');
        expectExit(await first, 0);
      }
      expect(ruleset()).not.toContain(`dport ${port} dnat`);
      if (!hasConntrack) return; // apt-get install conntrack to check the rest
      // The next container on the same host port has another address (allocation is
      // round robin). The kernel NATs a flow on its first packet only: unless tsrun deletes
      // the flow's conntrack entry, the client's datagrams keep going to udp1's old address.
      const second = serve('udp2');
      try {
        await waitForOutput(second, /ready/, 30_000);
        const ep2 = mine().find((e) => e.name === 'udp2')!;
        expect(ep2.ip).not.toBe(ep1.ip);
        expect(await udpAsk('127.0.0.1', port, 'same client', client)).toBe('udp2 same client');
      } finally {
        second.kill('SIGTERM');
        expectExit(await second, 0);
      }
    } finally {
      client.close();
    }
    expect(ruleset()).not.toContain(`dport ${port} dnat`);
  }, 120_000);

  it('network connect gives a running container a second interface and name on B; disconnect takes both back; rm -f releases every address', async () => {
    expectExit(await sb.tsrun(['network', 'create', 'neta']), 0);
    // B is a /29 (gateway .1, hosts .2-.6) so that a released address comes round again within a few runs.
    expectExit(await sb.tsrun(['network', 'create', '--subnet', '10.231.77.0/29', 'netb']), 0);
    const www = sb.mkdir('www');
    writeFileSync(join(www, 'index.html'), 'hello\n');
    const start = async (name: string, net: string): Promise<void> => {
      writeFileSync(join(www, `${name}.html`), `I am ${name}\n`);
      expectExit(await sb.tsrun(['run', '-d', '--name', name, '--network', net, '--rootfs', sb.rootfs(), '-v', `${www}:/www:ro`, '--', 'sh', '-c', SERVE(80)]), 0);
    };
    await start('ca', 'neta');
    await start('cb', 'netb');
    const exec = (name: string, script: string) => sb.tsrun(['exec', name, 'sh', '-c', script]);
    // httpd is up once exec can fetch from the container's own address (bounded: 50 × 0.1 s).
    for (const n of ['ca', 'cb']) expectExit(await exec(n, 'i=0; until wget -q -O /dev/null http://127.0.0.1/; do i=$((i+1)); [ $i -gt 50 ] && exit 1; sleep 0.1; done'), 0);

    const aEp = mine().find((e) => e.name === 'ca')!;
    expectExit(await sb.tsrun(['network', 'connect', 'netb', 'ca']), 0);
    const both = mine().filter((e) => e.name === 'ca');
    expect(both.map((e) => e.ifname).sort()).toEqual(['eth0', 'eth1']);
    const bEp = both.find((e) => e.ifname === 'eth1')!;
    expect(bEp.ip).toMatch(/^10\.231\.77\.[2-6]$/);
    expect(bEp.bridge).not.toBe(aEp.bridge);

    const addrs = await exec('ca', 'ip -4 -o addr show');
    expectExit(addrs, 0);
    expect(addrs.stdout).toMatch(new RegExp(`eth0\\s+inet ${aEp.ip.replace(/\./g, '\\.')}/`));
    expect(addrs.stdout).toMatch(new RegExp(`eth1\\s+inet ${bEp.ip.replace(/\./g, '\\.')}/29`));
    // By name, both ways, over B.
    const there = await exec('ca', 'timeout 10 wget -q -O- http://cb/cb.html');
    expectExit(there, 0);
    expect(there.stdout).toBe('I am cb\n');
    const back = await exec('cb', 'timeout 10 wget -q -O- http://ca/ca.html');
    expectExit(back, 0);
    expect(back.stdout).toBe('I am ca\n');
    // ca's own /etc/hosts names it by its first address (eth0's), as before the connect.
    const selfLine = await exec('ca', 'grep -w ca /etc/hosts');
    expect(selfLine.stdout.trim().split('\t')[0]).toBe(aEp.ip);
    const insp = await sb.tsrun(['network', 'inspect', 'netb']);
    expectExit(insp, 0);
    const containers = (JSON.parse(insp.stdout) as Array<{ Containers: Record<string, { Name: string; IPv4Address: string }> }>)[0]!.Containers;
    expect(containers[bEp.containerId]).toMatchObject({ Name: 'ca', IPv4Address: `${bEp.ip}/29` });
    expect(Object.values(containers).map((c) => c.Name).sort()).toEqual(['ca', 'cb']);

    const again = await sb.tsrun(['network', 'connect', 'netb', 'ca']);
    expectExit(again, 125);
    expect(again.stderr).toMatch(/container ca is already connected to network netb/);
    expect(mine().filter((e) => e.name === 'ca')).toHaveLength(2);

    expectExit(await sb.tsrun(['network', 'disconnect', 'netb', 'ca']), 0);
    expect(mine().filter((e) => e.name === 'ca').map((e) => e.ip)).toEqual([aEp.ip]);
    expect(existsSync(`/sys/class/net/${bEp.veth}`)).toBe(false);
    expect(endpointFiles().some((e) => e.bridge === bEp.bridge && e.ip === bEp.ip)).toBe(false);
    const gone = await exec('ca', 'ls /sys/class/net | sort | tr "\\n" " "; grep -cw cb /etc/hosts; timeout 5 wget -q -O- http://cb/cb.html; echo " wget=$?"');
    // ca's own /etc/hosts no longer names cb either: it is rewritten when ca leaves B.
    expect(gone.stdout).toMatch(/^eth0 lo 0\n wget=[1-9]/);
    const unknown = await exec('cb', 'grep -cw ca /etc/hosts; timeout 5 wget -q -O- http://ca/ca.html; echo " wget=$?"');
    expect(unknown.stdout).toMatch(/^0\n wget=[1-9]/);

    const notOn = await sb.tsrun(['network', 'disconnect', 'netb', 'ca']);
    expectExit(notOn, 125);
    expect(notOn.stderr).toMatch(/container ca is not connected to network netb/);

    // The released address is handed out again: B has cb's address held and four free;
    // allocation is round robin, so four short runs on B come round to it.
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await sb.run(['sh', '-c', 'ip -4 -o addr show eth0 | grep -o "inet [0-9.]*"'], ['--network', 'netb']);
      expectExit(r, 0);
      seen.push(r.stdout.trim().replace('inet ', ''));
    }
    expect(seen).toContain(bEp.ip);

    // Interface names: C takes the free eth1, B then eth2; after C leaves, its
    // reconnect takes eth1 again (the lowest free), not a name that is in use.
    expectExit(await sb.tsrun(['network', 'create', 'netc']), 0);
    expectExit(await sb.tsrun(['network', 'connect', 'netc', 'ca']), 0);
    expectExit(await sb.tsrun(['network', 'connect', 'netb', 'ca']), 0);
    expectExit(await sb.tsrun(['network', 'disconnect', 'netc', 'ca']), 0);
    const re = await sb.tsrun(['network', 'connect', 'netc', 'ca']);
    expectExit(re, 0);
    const three = mine().filter((e) => e.name === 'ca');
    expect(Object.fromEntries(three.map((e) => [e.ifname, e.network]))).toEqual({ eth0: 'neta', eth1: 'netc', eth2: 'netb' });
    const links = await exec('ca', 'ls /sys/class/net | sort | tr "\\n" " "');
    expect(links.stdout).toBe('eth0 eth1 eth2 lo ');

    // Then removed by force: all three of its addresses and veths go.
    const twice = three;
    expectExit(await sb.tsrun(['rm', '-f', 'ca']), 0);
    expect(endpointFiles().filter((e) => e.root === sb.root && e.containerId === aEp.containerId)).toEqual([]);
    for (const e of twice) expect(existsSync(`/sys/class/net/${e.veth}`)).toBe(false);
    // cb no longer lists it either.
    const after = await exec('cb', 'grep -cw ca /etc/hosts');
    expect(after.stdout.trim()).toBe('0');
    expectExit(await sb.tsrun(['rm', '-f', 'cb']), 0);
  }, 180_000);

  it('kill -9 of the monitor: a detached container keeps its address and veth while other commands collect garbage; the next monitor releases them at its exit', async () => {
    expectExit(await sb.tsrun(['network', 'create', 'netm']), 0);
    expectExit(await sb.tsrun(['run', '-d', '--name', 'km', '--network', 'netm', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'trap "exit 0" TERM; sleep 90 & wait']), 0);
    const [ep] = mine();
    expect(ep?.ifname).toBe('eth0');
    const monitor = Number(readFileSync(join(sb.root, 'run', 'monitor.pid'), 'utf8').split(' ')[0]);
    process.kill(monitor, 'SIGKILL');
    await until(() => !alive(monitor), 'the monitor to die', 5000);
    // Both collect garbage (a foreground run, and ps): the endpoint's owner is gone, its container is not.
    expectExit(await sb.run(['true'], ['--network', 'none']), 0);
    expectExit(await sb.tsrun(['ps']), 0);
    expect(mine().map((e) => e.ip)).toEqual([ep!.ip]);
    expect(existsSync(`/sys/class/net/${ep!.veth}`)).toBe(true);
    const inside = await sb.tsrun(['exec', 'km', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    expectExit(inside, 0);
    expect(inside.stdout).toContain(`${ep!.ip}/`);
    // stop starts a new monitor, which adopts the container and releases its network at the exit.
    expectExit(await sb.tsrun(['stop', '-t', '5', 'km']), 0);
    expect(mine()).toEqual([]);
    expect(existsSync(`/sys/class/net/${ep!.veth}`)).toBe(false);
    expectExit(await sb.tsrun(['rm', 'km']), 0);
  }, 90_000);

  it('network connect refuses a container on --network none or host, and a network that does not exist', async () => {
    expectExit(await sb.tsrun(['network', 'create', 'netc']), 0);
    for (const mode of ['none', 'host']) {
      expectExit(await sb.tsrun(['run', '-d', '--name', `c-${mode}`, '--network', mode, '--rootfs', sb.rootfs(), '--', 'sleep', '60']), 0);
      const r = await sb.tsrun(['network', 'connect', 'netc', `c-${mode}`]);
      expectExit(r, 125);
      expect(r.stderr).toMatch(/cannot be connected to other networks/);
    }
    const missing = await sb.tsrun(['network', 'connect', 'no-such-net', 'c-none']);
    expectExit(missing, 125);
    expect(missing.stderr).toMatch(/network no-such-net not found/);
    expect(endpointFiles().filter((e) => e.root === sb.root)).toEqual([]);
    expectExit(await sb.tsrun(['rm', '-f', 'c-none', 'c-host']), 0);
  }, 90_000);
});
