// containerd (Debian's 1.6) and its runc v2 shim driving bin/tsrun-runtime: the path
// the kubelet's CRI calls take. containerd runs per test with its own root, state and
// socket in the test's temp dir; the image is an OCI archive built in memory.
// The shim calls: tsrun-runtime --root RUNC_ROOT --log BUNDLE/log.json --log-format json
//   create --bundle BUNDLE --pid-file BUNDLE/init.pid [--console-socket S] ID
// then start, state, kill, delete; exec with --process FILE --detach --pid-file F.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { useSandbox } from '../helpers/sandbox.js';
import { CTR_NAMESPACE, busyboxOciArchive, containerdInstalled, startContainerd, type Containerd, type CtrResult } from '../helpers/containerd.js';
import { RUNTIME_BIN, runtime } from '../helpers/bundle.js';
import { until } from '../helpers/wait.js';
import { detachMountsUnder } from '../helpers/tempdirs.js';

const IMAGE = 'localhost/tsrun-bb:latest';
// container ids carry this process's pid: ctr's FIFOs and the shims' sockets sit in
// fixed host dirs, where a concurrent run must not be mistaken for this one
const ID = (name: string): string => `${name}-${process.pid}`;
const TEST_IDS = ['hi1', 'ex1', 'bg1', 'bg2', 'tty1'].map(ID);
const sb = useSandbox();
let cd: Containerd;
let runcRoot: string;

/** What the runtime wrote to the shim's --log for a task: the first place to look when the shim fails. */
function runtimeLogs(): string {
  const base = join(cd.dir, 'state', 'io.containerd.runtime.v2.task', CTR_NAMESPACE);
  let out = '';
  try {
    for (const id of readdirSync(base)) {
      const f = join(base, id, 'log.json');
      if (existsSync(f)) out += `--- ${id}/log.json\n${readFileSync(f, 'utf8')}`;
    }
  } catch {
    /* no task dirs */
  }
  return out;
}

function ok(r: CtrResult, code = 0): void {
  expect(r.timedOut, `timed out: ${r.command}`).toBe(false);
  expect(r.exitCode, `exit status of ${r.command}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\n${runtimeLogs()}\ncontainerd: ${cd.log().slice(-2000)}`).toBe(code);
}

let testStart = 0;

/**
 * A shim whose containerd is gone stays behind (and with it the rootfs mount it made,
 * its socket in /run/containerd/s and ctr's FIFO dir in /run/containerd/fifo). Kill the
 * shims that name this test's socket, and remove the fixed-path leftovers of this test:
 * the socket is named by sha256(containerd address/namespace/id) (containerd 1.6
 * shim.SocketAddress), the FIFO dirs are those made during the test that hold only
 * this test's container ids.
 */
function reapShims(socket: string, since: number): void {
  const ids = new Set<string>();
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv[0]?.endsWith('containerd-shim-runc-v2') || !argv.includes(socket)) continue;
    const id = argv[argv.indexOf('-id') + 1];
    if (id) ids.add(id);
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const id of [...ids, ...TEST_IDS]) {
    const sockName = createHash('sha256').update(join(socket, CTR_NAMESPACE, id)).digest('hex');
    // the name hashes this test's own containerd socket path: nobody else's
    rmSync(join('/run/containerd/s', sockName), { force: true });
  }
  const fifoRoot = '/run/containerd/fifo';
  for (const d of existsSync(fifoRoot) ? readdirSync(fifoRoot) : []) {
    const dir = join(fifoRoot, d);
    try {
      if (statSync(dir).mtimeMs < since) continue;
      const files = readdirSync(dir);
      if (files.length && files.every((f) => TEST_IDS.some((id) => f.startsWith(`${id}-`)))) rmSync(dir, { recursive: true, force: true });
    } catch {
      /* raced with its owner */
    }
  }
}

/** Containers tsrun-runtime still knows (the shim passes --root RUNC_ROOT/NAMESPACE). */
function runtimeState(): string[] {
  const dir = join(runcRoot, CTR_NAMESPACE, 'containers');
  return existsSync(dir) ? readdirSync(dir) : [];
}

const runFlags = (): string[] => ['--runc-binary', RUNTIME_BIN, '--runc-root', runcRoot];

describe.runIf(containerdInstalled())('containerd + runc v2 shim with --runc-binary tsrun-runtime', () => {
  beforeEach(async () => {
    testStart = Date.now();
    cd = await startContainerd(sb.mkdir('containerd'));
    runcRoot = sb.mkdir('runc-root');
    const archive = join(sb.dir, 'bb-oci.tar');
    writeFileSync(archive, await busyboxOciArchive(IMAGE));
    const imp = await cd.ctr(['images', 'import', '--all-platforms', archive]);
    ok(imp);
    expect((await cd.ctr(['images', 'ls', '-q'])).stdout).toContain(IMAGE);
  });

  afterEach(async () => {
    // best effort: whatever a failing test left, in the order containerd needs. A shim
    // stuck in `create` (see the -t test) only moves on once the container process is gone.
    const stateDir = join(runcRoot, CTR_NAMESPACE, 'containers');
    for (const id of existsSync(stateDir) ? readdirSync(stateDir) : []) {
      try {
        const { pid } = JSON.parse(readFileSync(join(stateDir, id, 'state.json'), 'utf8')) as { pid: number };
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(runcRoot)) process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const tasks = (await cd.ctr(['task', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
    for (const t of tasks) await cd.ctr(['task', 'delete', '--force', t]);
    const ctrs = (await cd.ctr(['containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
    for (const c of ctrs) await cd.ctr(['containers', 'delete', c]);
    await cd.stop();
    reapShims(cd.socket, testStart);
    // the killed shims must be gone before the sandbox removes the dir they write into
    await until(() => !readdirSync('/proc').some((p) => {
      try {
        return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(cd.socket);
      } catch {
        return false;
      }
    }), 'the shims to exit', 5000);
    // the runtime's own state for every container is gone
    // the shim passes --root RUNC_ROOT/NAMESPACE
    const left = existsSync(stateDir) ? readdirSync(stateDir) : [];
    // clean up before asserting, so one failure does not leave mounts or state behind
    for (const id of left) await runtime(['delete', '--force', id], { root: join(runcRoot, CTR_NAMESPACE), outDir: join(sb.dir, 'rt-io') });
    detachMountsUnder(cd.dir); // the rootfs a killed shim had mounted in the host namespace
    // No assertions here: a throwing afterEach stops the sandbox's own afterEach (leak
    // check and temp dir removal). Each test asserts what it should have cleaned itself.
    void tasks;
  });

  it('ctr run --rm IMAGE ID echo hi', async () => {
    const r = await cd.ctr(['run', '--rm', ...runFlags(), IMAGE, ID('hi1'), 'echo', 'hi']);
    ok(r);
    expect(r.stdout).toBe('hi\n');
    expect((await cd.ctr(['containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect(runtimeState(), 'tsrun-runtime state left under --runc-root').toEqual([]);
  });

  it('ctr run passes the exit status through', async () => {
    ok(await cd.ctr(['run', '--rm', ...runFlags(), IMAGE, ID('ex1'), 'sh', '-c', 'exit 9']), 9);
  });

  it('a detached task: task exec, task kill, task delete', async () => {
    const script = "trap 'exit 0' TERM; echo up; while :; do sleep 0.1; done";
    ok(await cd.ctr(['run', '-d', '--null-io', ...runFlags(), IMAGE, ID('bg1'), 'sh', '-c', script]));
    const ls = await cd.ctr(['task', 'ls']);
    ok(ls);
    const row = ls.stdout.split('\n').find((l) => l.startsWith(ID('bg1')));
    expect(row).toMatch(/RUNNING/);
    const pid = Number(row!.trim().split(/\s+/)[1]);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/^sh\0-c\0/);

    // the runtime's view agrees with the shim's
    const st = JSON.parse(readFileSync(join(runcRoot, CTR_NAMESPACE, 'containers', ID('bg1'), 'state.json'), 'utf8')) as { pid: number };
    expect(st.pid).toBe(pid);

    const ex = await cd.ctr(['task', 'exec', '--exec-id', 'e1', ID('bg1'), 'sh', '-c', 'echo in-exec $(readlink /proc/1/ns/pid); exit 3']);
    ok(ex, 3);
    expect(ex.stdout.trim()).toBe(`in-exec ${readlinkSync(`/proc/${pid}/ns/pid`)}`);

    ok(await cd.ctr(['task', 'kill', ID('bg1')]));
    await until(async () => /STOPPED/.test((await cd.ctr(['task', 'ls'])).stdout), 'the task to stop after SIGTERM', 15_000);
    ok(await cd.ctr(['task', 'delete', ID('bg1')]));
    ok(await cd.ctr(['containers', 'delete', ID('bg1')]));
    await until(() => !existsSync(`/proc/${pid}`), 'the container process to be gone', 5000);
    expect(existsSync(join(runcRoot, CTR_NAMESPACE, 'containers', ID('bg1')))).toBe(false);
  });

  it('ctr task kill --signal KILL of a task that ignores TERM', async () => {
    ok(await cd.ctr(['run', '-d', '--null-io', ...runFlags(), IMAGE, ID('bg2'), 'sh', '-c', "trap '' TERM; while :; do sleep 0.1; done"]));
    ok(await cd.ctr(['task', 'kill', '--signal', 'SIGKILL', ID('bg2')]));
    await until(async () => /STOPPED/.test((await cd.ctr(['task', 'ls'])).stdout), 'the task to stop after SIGKILL', 15_000);
    ok(await cd.ctr(['task', 'delete', ID('bg2')]));
    ok(await cd.ctr(['containers', 'delete', ID('bg2')]));
  });

  it('ctr run -t in tmux: the shim gets the pty master through --console-socket', async () => {
    // ctr itself needs a terminal for -t ("provided file is not a console" otherwise).
    // Found: with process.terminal the gated container process keeps `create`'s
    // stdout/stderr (a pipe from the shim) open until start. go-runc waits for EOF on that
    // pipe before create returns, so the shim never gets to start, and this test hangs
    // at the prompt until the container process is killed. runc gives its init /dev/null.
    const sock = join(sb.dir, 'tmux.sock');
    const tmux = (...a: string[]): string => execFileSync('tmux', ['-S', sock, ...a], { encoding: 'utf8' });
    const q = (x: string): string => `'${x.replace(/'/g, `'\\''`)}'`;
    const cmd = ['ctr', '--address', cd.socket, '-n', CTR_NAMESPACE, 'run', '--rm', '-t', ...runFlags(), IMAGE, ID('tty1'), 'sh'].map(q).join(' ');
    tmux('new-session', '-d', '-s', 'ct', '-x', '90', '-y', '25', `${cmd}; echo ctr-exit=$?; sleep 30`);
    try {
      const pane = (): string => tmux('capture-pane', '-p', '-t', 'ct');
      await until(() => /^\/ #/m.test(pane()), 'the shell prompt', 20_000).catch((e: Error) => {
        throw new Error(`${e.message}; the pane shows:\n${pane()}\n${runtimeLogs()}`);
      });
      tmux('send-keys', '-t', 'ct', 'echo $((6*7)); tty; stty size', 'Enter');
      await until(() => /^42$/m.test(pane()), 'the answer', 10_000);
      expect(pane()).toMatch(/^\/dev\/pts\/\d+$/m);
      expect(pane()).toMatch(/^25 90$/m);
      tmux('send-keys', '-t', 'ct', 'exit 4', 'Enter');
      await until(() => /ctr-exit=4/.test(pane()), 'ctr to exit with the shell\'s status', 15_000);
      await until(() => runtimeState().length === 0, 'the shim to delete the container', 10_000);
    } finally {
      spawnSync('tmux', ['-S', sock, 'kill-server'], { stdio: 'ignore' });
    }
  });
});
