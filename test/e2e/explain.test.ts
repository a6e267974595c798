// `tsrun explain` reports a running container as the kernel sees it. Each claim is
// checked against what the container itself reads from inside.
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useSandbox } from '../helpers/sandbox.js';
import { waitForOutput } from '../helpers/tsrun.js';

describe('tsrun explain', () => {
  const sb = useSandbox();

  it('shows own namespaces, the container\'s mount table, capabilities and seccomp, for an id prefix', async () => {
    const rootfs = sb.rootfs();
    const sub = sb.spawn(['run', '--rootfs', rootfs, '--cap-drop', 'NET_RAW', '--', 'sh', '-c', 'trap "exit 0" TERM; readlink /proc/self/ns/net; echo ready; sleep 30 & wait']);
    const seen = await waitForOutput(sub, /ready/);
    const innerNet = seen.split('\n')[0]!.trim();
    const id = readdirSync(join(sb.root, 'run', 'containers'))[0]!;
    try {
      const r = await sb.tsrun(['explain', '--format', 'json', id.slice(0, 6)]);
      expect(r.exitCode, r.stderr).toBe(0);
      const e = JSON.parse(r.stdout) as {
        id: string; pid: number;
        namespaces: Array<{ type: string; host: string; container: string; own: boolean }>;
        mounts: Array<{ mountPoint: string; fstype: string }>;
        capabilities: Record<string, string[]>;
      };
      expect(e.id).toBe(id);
      const ns = Object.fromEntries(e.namespaces.map((n) => [n.type, n]));
      for (const t of ['pid', 'mnt', 'net', 'uts', 'ipc', 'cgroup']) expect(ns[t]!.own, t).toBe(true);
      expect(ns.user!.own).toBe(false);
      expect(ns.net!.container).toBe(innerNet);
      expect(ns.net!.host).toBe(readlinkSync('/proc/self/ns/net'));
      expect(e.mounts.find((m) => m.mountPoint === '/proc')?.fstype).toBe('proc');
      expect(e.mounts.some((m) => m.mountPoint.startsWith('/work') || m.mountPoint.startsWith('/home'))).toBe(false);
      expect(e.capabilities.CapBnd).toContain('CAP_CHOWN');
      expect(e.capabilities.CapBnd).not.toContain('CAP_NET_RAW');
      expect(e.capabilities.CapAmb).toEqual([]);

      const text = await sb.tsrun(['explain', id]);
      expect(text.stdout).toMatch(/^ {2}pid +pid:\[\d+\] +pid:\[\d+\] +own$/m);
      expect(text.stdout).toContain('no user namespace: root inside is root outside');
    } finally {
      sub.kill('SIGTERM');
      await sub;
    }
  });

  it('names a container that does not exist', async () => {
    const r = await sb.tsrun(['explain', 'feedface']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain('no such container: feedface');
  });
});
