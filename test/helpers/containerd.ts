// Debian's containerd, started by a test with its own root, state and sockets in a
// temp dir, and an OCI image archive of the busybox rootfs built in memory, for
// `ctr images import`. The CRI plugin (and everything that needs the network or a
// special filesystem) is disabled: only the task service and the runc v2 shim, which
// calls the runtime binary given by --runc-binary the way the kubelet's CRI path does.
//
// What stays outside the temp dir: containerd 1.6 places shim sockets in
// /run/containerd/s/ and ctr its stdio FIFOs in /run/containerd/fifo/ (both fixed
// paths); the shim and ctr remove theirs when the task is deleted.
import { type ChildProcess, spawn } from 'node:child_process';
import { commandsRun } from './commands.js';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildImage, busyboxTarFiles, hostArch, makeTar, type BuiltImage } from './images.js';

export const CTR_NAMESPACE = 'tsrun';

export function containerdInstalled(): boolean {
  return commandsRun(['containerd', '--version'], ['ctr', '--version'], ['containerd-shim-runc-v2', '-v']);
}

export interface CtrResult {
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
  timedOut: boolean;
  command: string;
}

export interface Containerd {
  dir: string;
  socket: string;
  /** `ctr --address SOCK -n tsrun ARGS...` */
  ctr(args: string[], o?: { timeoutMs?: number }): Promise<CtrResult>;
  stop(): Promise<void>;
  /** containerd's own log (stderr), for failure messages */
  log(): string;
}

export async function startContainerd(dir: string): Promise<Containerd> {
  for (const d of ['root', 'state', 'opt']) mkdirSync(join(dir, d), { recursive: true });
  const socket = join(dir, 'c.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(config, [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = [',
    '  "io.containerd.grpc.v1.cri",',
    '  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",',
    '  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",',
    '  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",',
    ']',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${socket}.ttrpc"`,
    '[debug]',
    '  address = ""',
    '  level = "debug"',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${join(dir, 'opt')}"`,
    '',
  ].join('\n'));
  let logText = '';
  const proc: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (c: Buffer) => (logText += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (logText += c.toString()));

  const c: Containerd = {
    dir,
    socket,
    async ctr(args, o = {}) {
      const full = ['--address', socket, '-n', CTR_NAMESPACE, ...args];
      const r = await execa('ctr', full, { reject: false, stdin: 'ignore', timeout: o.timeoutMs ?? 60_000, forceKillAfterDelay: 2000, stripFinalNewline: false });
      return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode, timedOut: r.timedOut === true, command: ['ctr', ...full].join(' ') };
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((res) => proc.once('exit', res));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(t);
      }
    },
    log: () => logText,
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (existsSync(socket) && (await c.ctr(['version'], { timeoutMs: 5000 })).exitCode === 0) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      await c.stop();
      throw new Error(`containerd did not come up:\n${logText.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return c;
}

/**
 * An OCI image-layout archive (oci-layout, index.json, blobs/sha256/...) of the busybox
 * rootfs, named NAME through the index annotations that `ctr images import` reads.
 */
export async function busyboxOciArchive(name: string): Promise<Buffer> {
  const img: BuiltImage = await buildImage({ layers: [busyboxTarFiles()], architecture: hostArch(), config: { Cmd: ['sh'] } });
  const blobs = [img.manifest, img.config, ...img.layers];
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.data.length,
      annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.slice(name.lastIndexOf(':') + 1) },
      platform: { os: 'linux', architecture: hostArch() },
    }],
  };
  return makeTar([
    { name: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    { name: 'index.json', content: JSON.stringify(index) },
    { name: 'blobs/', type: 'directory' },
    { name: 'blobs/sha256/', type: 'directory' },
    ...blobs.map((b) => ({ name: `blobs/sha256/${b.digest.slice('sha256:'.length)}`, content: b.data })),
  ]);
}
