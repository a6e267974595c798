// bin/tsrun-runtime driven directly, the way conmon and containerd's runc shim drive an
// OCI runtime: one bundle per test, one process per verb. Every assertion reads a real
// effect: a file the container's command leaves in /out (a host dir bound in), the
// kernel's view of a pid, the bytes read through the pty master a socket received.
// The state transitions and their errors follow runtime-spec runtime.md ("Lifecycle",
// "Operations"); hooks follow config.md ("POSIX-platform Hooks").
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useSandbox, type Sandbox } from '../helpers/sandbox.js';
import { makeBundle, nsInode, runtime, runtimeIds, waitForFile, type Bundle, type SpecJson, type RuntimeOptions, type RuntimeResult } from '../helpers/bundle.js';
import { alive, until } from '../helpers/wait.js';

const sb = useSandbox();

/** The runtime's --root lives under the sandbox's TSRUN_ROOT/run, where the leak checker looks for leftover state. */
const rtRoot = (s: Sandbox): string => join(s.root, 'run');
const rt = (args: string[], o: Partial<RuntimeOptions> = {}): Promise<RuntimeResult> => runtime(args, { root: rtRoot(sb), outDir: join(sb.dir, 'io'), ...o });

function ok(r: RuntimeResult, code = 0): void {
  expect(r.timedOut, `timed out: ${r.command}`).toBe(false);
  expect(r.exitCode, `exit status of ${r.command}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(code);
}

function failed(r: RuntimeResult, re?: RegExp): void {
  expect(r.timedOut, `timed out: ${r.command}`).toBe(false);
  expect(r.exitCode, `${r.command} should have failed\nstdout: ${r.stdout}`).not.toBe(0);
  expect(r.exitCode).not.toBeNull();
  if (re) expect(r.stderr).toMatch(re);
}

async function state(id: string): Promise<Record<string, unknown>> {
  const r = await rt(['state', id]);
  ok(r);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

function bundle(args: string[], edit?: (s: SpecJson) => void): Bundle {
  return makeBundle(join(sb.dir, 'bundle'), { args, edit });
}

/** Cleans up a container whatever state a failing test left it in. */
async function forceDelete(id: string): Promise<void> {
  if (runtimeIds(rtRoot(sb)).includes(id)) await rt(['delete', '--force', id]);
}

describe('tsrun-runtime lifecycle (runtime.md)', () => {
  it('create leaves the process before its command; start runs it; exit -> stopped; delete removes it', async () => {
    const b = bundle(['sh', '-c', 'echo started > /out/ran; sleep 0.5']);
    const pidFile = join(sb.dir, 'pid');
    ok(await rt(['create', '--bundle', b.dir, '--pid-file', pidFile, 'c1']));
    try {
      // pid-file: only digits, no newline (runc writes it the same way; engines parse it strictly)
      const pidText = readFileSync(pidFile, 'utf8');
      expect(pidText).toMatch(/^\d+$/);
      const pid = Number(pidText);
      const s1 = await state('c1');
      expect(s1.status).toBe('created');
      expect(s1.pid).toBe(pid);
      expect(alive(pid)).toBe(true);
      // runtime.md: the user-specified program MUST NOT be run before start
      await new Promise((r) => setTimeout(r, 300));
      expect(existsSync(join(b.out, 'ran'))).toBe(false);
      // it is already inside its namespaces, though: a fresh mount namespace
      expect(readlinkSync(`/proc/${pid}/ns/mnt`)).not.toBe(readlinkSync('/proc/self/ns/mnt'));

      ok(await rt(['start', 'c1']));
      await waitForFile(join(b.out, 'ran'), /started/);
      expect((await state('c1')).status).toBe('running');

      await until(() => !alive(pid), 'the container process to exit');
      const s3 = await state('c1');
      expect(s3.status).toBe('stopped');
      // the state survives until delete
      expect(runtimeIds(rtRoot(sb))).toContain('c1');

      // runtime.md kill: attempting to send a signal to a container that is neither created nor running MUST fail
      failed(await rt(['kill', 'c1', 'KILL']), /not running|stopped/);
      // start of a stopped container fails too
      failed(await rt(['start', 'c1']), /stopped/);

      ok(await rt(['delete', 'c1']));
      expect(runtimeIds(rtRoot(sb))).not.toContain('c1');
      failed(await rt(['state', 'c1']), /does not exist/);
    } finally {
      await forceDelete('c1');
    }
  });

  it('state prints only the State JSON with the fields runtime.md names', async () => {
    const b = bundle(['sleep', '30'], (s) => {
      s.annotations = { 'org.example.key': 'value-1' };
    });
    ok(await rt(['create', '--bundle', b.dir, 'st']));
    try {
      const r = await rt(['state', 'st']);
      ok(r);
      expect(r.stderr).toBe('');
      const j = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(Object.keys(j).sort()).toEqual(['annotations', 'bundle', 'created', 'id', 'ociVersion', 'pid', 'status']);
      expect(j.ociVersion).toMatch(/^1\.\d+\.\d+/);
      expect(j.id).toBe('st');
      expect(j.status).toBe('created');
      expect(typeof j.pid).toBe('number');
      expect(j.bundle).toBe(b.dir);
      expect(j.annotations).toEqual({ 'org.example.key': 'value-1' });
      expect(Number.isNaN(Date.parse(String(j.created)))).toBe(false);
    } finally {
      await forceDelete('st');
    }
  });

  it('delete of a running container fails without --force; delete --force kills it', async () => {
    const b = bundle(['sleep', '60']);
    ok(await rt(['create', '--bundle', b.dir, 'dr']));
    try {
      const pid = Number((await state('dr')).pid);
      ok(await rt(['start', 'dr']));
      expect((await state('dr')).status).toBe('running');
      failed(await rt(['delete', 'dr']), /running/);
      expect(alive(pid)).toBe(true);
      expect((await state('dr')).status).toBe('running');
      ok(await rt(['delete', '--force', 'dr']));
      await until(() => !alive(pid), 'the killed container to be gone', 5000);
      expect(runtimeIds(rtRoot(sb))).not.toContain('dr');
    } finally {
      await forceDelete('dr');
    }
  });

  it('delete --force of a created (never started) container: its command never runs', async () => {
    const b = bundle(['sh', '-c', 'echo x > /out/ran']);
    ok(await rt(['create', '--bundle', b.dir, 'dc']));
    const pid = Number((await state('dc')).pid);
    ok(await rt(['delete', '--force', 'dc']));
    await until(() => !alive(pid), 'the gated process to be gone', 5000);
    expect(existsSync(join(b.out, 'ran'))).toBe(false);
  });

  it('start twice fails; a duplicate id fails and leaves the first container alone', async () => {
    const b = bundle(['sleep', '60']);
    ok(await rt(['create', '--bundle', b.dir, 'dup']));
    try {
      const pid = Number((await state('dup')).pid);
      failed(await rt(['create', '--bundle', b.dir, 'dup']), /already exists/);
      expect((await state('dup')).pid).toBe(pid);
      expect(alive(pid)).toBe(true);
      ok(await rt(['start', 'dup']));
      failed(await rt(['start', 'dup']), /running/);
      expect((await state('dup')).status).toBe('running');
    } finally {
      await forceDelete('dup');
    }
  });

  it('unknown ids and invalid ids fail with an error', async () => {
    failed(await rt(['state', 'nope']), /does not exist/);
    failed(await rt(['start', 'nope']), /does not exist/);
    failed(await rt(['kill', 'nope']), /does not exist/);
    failed(await rt(['delete', 'nope']), /does not exist/);
    failed(await rt(['state', '../escape']), /invalid container id/);
  });

  it('kill takes names with and without SIG, and numbers; without --all only the init gets it, with --all every process', async () => {
    // PID 1 of a pid namespace only receives signals it has a handler for
    // (pid_namespaces(7)), hence the traps. The background sleeps have no handler: TERM kills them.
    const script = [
      "trap 'echo USR1 >> /out/sig' USR1",
      "trap 'echo USR2 >> /out/sig' USR2",
      "trap 'echo TERM >> /out/sig' TERM",
      'sleep 1001 & sleep 1002 &',
      'echo ready > /out/ready',
      'while :; do sleep 0.1; done',
    ].join('\n');
    const b = bundle(['sh', '-c', script]);
    ok(await rt(['create', '--bundle', b.dir, 'k']));
    try {
      ok(await rt(['start', 'k']));
      await waitForFile(join(b.out, 'ready'), /ready/);
      const sig = join(b.out, 'sig');
      ok(await rt(['kill', 'k', 'USR1']));
      await waitForFile(sig, /USR1\n$/);
      ok(await rt(['kill', 'k', 'SIGUSR2']));
      await waitForFile(sig, /USR1\nUSR2\n$/);
      ok(await rt(['kill', 'k', '10'])); // SIGUSR1 on x86_64 and arm64
      await waitForFile(sig, /USR1\nUSR2\nUSR1\n$/);
      failed(await rt(['kill', 'k', 'SIGNOPE']));

      const psr = await rt(['ps', '--format', 'json', 'k']);
      ok(psr);
      const pids = JSON.parse(psr.stdout) as number[];
      // the loop's short sleeps come and go while ps runs: a pid may already be gone
      const cmdOf = (p: number): string => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'latin1');
        } catch {
          return '';
        }
      };
      const bg = pids.filter((p) => /sleep\x00100[12]/.test(cmdOf(p)));
      expect(bg).toHaveLength(2);

      // default signal is SIGTERM, to the init only
      ok(await rt(['kill', 'k']));
      await waitForFile(sig, /TERM\n$/);
      expect(bg.every(alive)).toBe(true);

      ok(await rt(['kill', '--all', 'k', 'TERM']));
      await until(() => !bg.some(alive), 'kill --all to reach the background sleeps', 5000);
      expect((await state('k')).status).toBe('running');

      ok(await rt(['kill', 'k', 'SIGKILL']));
      await until(async () => (await state('k')).status === 'stopped', 'SIGKILL to stop the container', 5000);
      ok(await rt(['delete', 'k']));
    } finally {
      await forceDelete('k');
    }
  });

  it('--log FILE --log-format json: errors are JSON lines in FILE and the exit status is non-zero', async () => {
    const log = join(sb.dir, 'runtime.log');
    const r = await rt(['state', 'missing'], { globals: ['--log', log, '--log-format', 'json'] });
    failed(r);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      const j = JSON.parse(l) as Record<string, unknown>;
      expect(j.level).toBe('error');
      expect(String(j.msg)).toMatch(/missing/);
      expect(typeof j.time).toBe('string');
    }
    // a failing create (no config.json) is logged the same way
    const r2 = await rt(['create', '--bundle', sb.mkdir('empty-bundle'), 'x'], { globals: ['--log', log, '--log-format', 'json'] });
    failed(r2);
    const last = JSON.parse(readFileSync(log, 'utf8').trim().split('\n').pop()!) as Record<string, unknown>;
    expect(String(last.msg)).toMatch(/config\.json/);
    expect(runtimeIds(rtRoot(sb))).toEqual([]);
  });

  it('--console-socket: the pty master arrives over SCM_RIGHTS and carries the container\'s terminal both ways', async () => {
    const sock = join(sb.dir, 'console.sock');
    const got = join(sb.dir, 'console.out');
    const listener = join(sb.dir, 'listener.py');
    // Node cannot receive SCM_RIGHTS; Python can (socket.recv_fds, 3.9+).
    writeFileSync(listener, [
      'import os, socket, sys',
      'path, out = sys.argv[1], sys.argv[2]',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
      's.bind(path); s.listen(1)',
      'c, _ = s.accept()',
      'msg, fds, flags, addr = socket.recv_fds(c, 1024, 4)',
      'f = open(out, "w")',
      'f.write("name=%s fds=%d\\n" % (msg.decode(), len(fds))); f.flush()',
      'm = fds[0]',
      'os.write(m, b"hello-from-master\\n")',
      'while True:',
      '    try:',
      '        d = os.read(m, 4096)',
      '    except OSError:',
      '        break',  // EIO once the last slave fd is closed
      '    if not d: break',
      '    f.write(d.decode(errors="replace")); f.flush()',
    ].join('\n'));
    const py = spawn('python3', [listener, sock, got], { stdio: 'ignore' });
    try {
      await until(() => existsSync(sock), 'the listener socket');
      const b = bundle(['sh', '-c', 'read line; echo "got:$line"; tty; stty size'], (s) => {
        s.process.terminal = true;
        s.process.consoleSize = { height: 33, width: 111 };
      });
      failed(await rt(['create', '--bundle', b.dir, 'tty-nosock']), /console-socket/);
      ok(await rt(['create', '--bundle', b.dir, '--console-socket', sock, 'tty']));
      ok(await rt(['start', 'tty']));
      const text = await waitForFile(got, /33 111/);
      expect(text).toMatch(/^name=\S* fds=1\n/);
      expect(text).toMatch(/got:hello-from-master/);
      expect(text).toMatch(/\/dev\/pts\/\d+/);
      await until(async () => (await state('tty')).status === 'stopped', 'the tty container to exit');
      ok(await rt(['delete', 'tty']));
    } finally {
      py.kill('SIGKILL');
      await forceDelete('tty');
    }
  });
});

describe('tsrun-runtime hooks (config.md POSIX-platform Hooks)', () => {
  function hookScript(name: string, body: string): string {
    const p = sb.writeFile(`hook-${name}.sh`, `#!/bin/sh\n${body}\n`);
    chmodSync(p, 0o755);
    return p;
  }

  it('runs all six hooks at their points with the state JSON on stdin', async () => {
    const log = join(sb.dir, 'hooks.log');
    const names = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
    const hooks: Record<string, unknown[]> = {};
    for (const n of names) {
      // each hook records its name (in order, in one log) and what it read on stdin
      const h = hookScript(n, `echo "$1" >> ${log}; cat > ${sb.dir}/stdin-$1.json`);
      hooks[n] = [{ path: h, args: [h, n] }];
    }
    // A startContainer hook's path resolves in the container (config.md), and it runs
    // there: it lives in the rootfs and writes through the /out bind.
    hooks.startContainer = [{ path: '/hook-start.sh', args: ['/hook-start.sh', 'startContainer'] }];
    const b = bundle(['sh', '-c', 'echo ran > /out/ran; sleep 30'], (s) => {
      s.hooks = hooks;
    });
    writeFileSync(join(b.rootfs, 'hook-start.sh'), '#!/bin/sh\necho "$1" > /out/start.log; cat > /out/stdin-startContainer.json\n', { mode: 0o755 });
    ok(await rt(['create', '--bundle', b.dir, 'hk']));
    try {
      expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['prestart', 'createRuntime', 'createContainer']);
      const pid = Number((await state('hk')).pid);
      for (const n of ['prestart', 'createRuntime', 'createContainer']) {
        const st = JSON.parse(readFileSync(join(sb.dir, `stdin-${n}.json`), 'utf8')) as Record<string, unknown>;
        expect(st.id).toBe('hk');
        expect(st.pid).toBe(pid);
        expect(st.bundle).toBe(b.dir);
        expect(st.ociVersion).toBeTruthy();
        // runtime.md: "created" once the create operation has made the environment (step 2)
        expect(st.status).toBe('created');
      }
      expect(existsSync(join(b.out, 'ran'))).toBe(false);
      ok(await rt(['start', 'hk']));
      expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['prestart', 'createRuntime', 'createContainer', 'poststart']);
      expect(readFileSync(join(b.out, 'start.log'), 'utf8')).toBe('startContainer\n');
      expect((JSON.parse(readFileSync(join(b.out, 'stdin-startContainer.json'), 'utf8')) as { id: string }).id).toBe('hk');
      const ps = JSON.parse(readFileSync(join(sb.dir, 'stdin-poststart.json'), 'utf8')) as Record<string, unknown>;
      expect(ps.pid).toBe(pid);
      ok(await rt(['kill', 'hk', 'KILL']));
      await until(async () => (await state('hk')).status === 'stopped', 'the container to stop');
      ok(await rt(['delete', 'hk']));
      expect(readFileSync(log, 'utf8').trim().split('\n').at(-1)).toBe('poststop');
      const post = JSON.parse(readFileSync(join(sb.dir, 'stdin-poststop.json'), 'utf8')) as Record<string, unknown>;
      expect(post.id).toBe('hk');
      expect(post.status).toBe('stopped');
    } finally {
      await forceDelete('hk');
    }
  });

  it('run (create, start and wait in one) runs the same hooks, in order, with each one\'s state', async () => {
    const log = join(sb.dir, 'run-hooks.log');
    const names = ['prestart', 'createRuntime', 'createContainer', 'poststart', 'poststop'] as const;
    const hooks: Record<string, unknown[]> = {};
    for (const n of names) {
      const h = hookScript(`run-${n}`, `echo "$1 $(sed -e 's/.*"status":"\\([a-z]*\\)".*/\\1/')" >> ${log}`);
      hooks[n] = [{ path: h, args: [h, n] }];
    }
    hooks.startContainer = [{ path: '/hook-start.sh', args: ['/hook-start.sh'] }];
    const b = bundle(['sh', '-c', 'cat /out/start.log'], (s) => {
      s.hooks = hooks;
    });
    writeFileSync(join(b.rootfs, 'hook-start.sh'), '#!/bin/sh\necho startContainer-inside > /out/start.log\n', { mode: 0o755 });
    const r = await rt(['run', '--bundle', b.dir, 'hr']);
    ok(r);
    // the startContainer hook ran in the container before the command read its output
    expect(r.stdout).toBe('startContainer-inside\n');
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['prestart created', 'createRuntime created', 'createContainer created', 'poststart running', 'poststop stopped']);
  });

  it('hook env and args reach the hook as given', async () => {
    const h = hookScript('env', `echo "argv0=$0 a1=$1 FOO=$FOO PATH=$PATH" > ${sb.dir}/env.txt`);
    const b = bundle(['true'], (s) => {
      s.hooks = { createRuntime: [{ path: h, args: ['myhook', 'one'], env: ['FOO=bar', 'PATH=/bin'] }] };
    });
    ok(await rt(['create', '--bundle', b.dir, 'he']));
    try {
      expect(readFileSync(join(sb.dir, 'env.txt'), 'utf8')).toMatch(/a1=one FOO=bar PATH=\/bin/);
    } finally {
      await forceDelete('he');
    }
  });

  it('createContainer and startContainer hooks run in the container\'s namespaces (config.md)', async () => {
    // The hook prints its uts namespace to stderr, which is the runtime's stderr.
    const h = hookScript('ns', 'echo "HOOK $1 $(readlink /proc/self/ns/uts)" >&2');
    const b = bundle(['sleep', '30'], (s) => {
      // startContainer's path resolves in the container: the same script, in the rootfs
      s.hooks = { createContainer: [{ path: h, args: [h, 'createContainer'] }], startContainer: [{ path: '/hook-ns.sh', args: ['/hook-ns.sh', 'startContainer'] }], createRuntime: [{ path: h, args: [h, 'createRuntime'] }] };
    });
    writeFileSync(join(b.rootfs, 'hook-ns.sh'), readFileSync(h), { mode: 0o755 });
    const c = await rt(['create', '--bundle', b.dir, 'hn']);
    try {
      ok(c);
      const pid = Number((await state('hn')).pid);
      const containerUts = nsInode(readlinkSync(`/proc/${pid}/ns/uts`));
      const hostUts = nsInode(readlinkSync('/proc/self/ns/uts'));
      const nsOf = (text: string, n: string): string => nsInode(new RegExp(`HOOK ${n} (\\S+)`).exec(text)?.[1] ?? 'missing');
      // createRuntime runs in the runtime namespace
      expect(nsOf(c.stderr, 'createRuntime')).toBe(hostUts);
      expect(nsOf(c.stderr, 'createContainer')).toBe(containerUts);
      const s = await rt(['start', 'hn']);
      ok(s);
      expect(nsOf(s.stderr, 'startContainer')).toBe(containerUts);
    } finally {
      await forceDelete('hn');
    }
  });

  it('a failing prestart hook fails create, and nothing is left behind', async () => {
    const h = hookScript('fail', 'exit 7');
    const b = bundle(['sh', '-c', 'echo ran > /out/ran'], (s) => {
      s.hooks = { prestart: [{ path: h }] };
    });
    const r = await rt(['create', '--bundle', b.dir, 'hf']);
    failed(r, /prestart/);
    expect(runtimeIds(rtRoot(sb))).not.toContain('hf');
    failed(await rt(['state', 'hf']), /does not exist/);
    await new Promise((res) => setTimeout(res, 200));
    expect(existsSync(join(b.out, 'ran'))).toBe(false);
  });

  it('a hook that outlives its timeout is killed and fails create', async () => {
    const h = hookScript('slow', 'sleep 20');
    const b = bundle(['true'], (s) => {
      s.hooks = { createRuntime: [{ path: h, timeout: 1 }] };
    });
    const r = await rt(['create', '--bundle', b.dir, 'ht']);
    // killed for its timeout, not waited out (the runner's own timeout would fail first)
    failed(r, /createRuntime hook .* killed after its timeout of 1s/);
    expect(runtimeIds(rtRoot(sb))).not.toContain('ht');
  });

  it('a failing poststop hook is only a warning: delete still succeeds', async () => {
    const h = hookScript('pfail', 'exit 3');
    const b = bundle(['true'], (s) => {
      s.hooks = { poststop: [{ path: h }] };
    });
    ok(await rt(['create', '--bundle', b.dir, 'hp']));
    const r = await rt(['delete', '--force', 'hp']);
    ok(r);
    expect(r.stderr).toMatch(/poststop/);
    expect(runtimeIds(rtRoot(sb))).not.toContain('hp');
  });
});

describe('tsrun-runtime exec', () => {
  async function running(id: string, edit?: (s: SpecJson) => void): Promise<Bundle> {
    const b = bundle(['sleep', '60'], edit);
    ok(await rt(['create', '--bundle', b.dir, id]));
    ok(await rt(['start', id]));
    return b;
  }

  it('returns the command\'s exit status and output, inside the container\'s namespaces', async () => {
    await running('ex');
    try {
      const pid = Number((await state('ex')).pid);
      const r = await rt(['exec', 'ex', 'sh', '-c', 'readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; hostname; exit 5']);
      ok(r, 5);
      const [pidns, mntns, host] = r.stdout.trim().split('\n');
      expect(pidns).toBe(readlinkSync(`/proc/${pid}/ns/pid`));
      expect(mntns).toBe(readlinkSync(`/proc/${pid}/ns/mnt`));
      expect(host).toBe('tsrun');
    } finally {
      await forceDelete('ex');
    }
  });

  it('a command that is not there fails with "executable file not found"', async () => {
    await running('enf');
    try {
      const r = await rt(['exec', 'enf', 'no-such-command']);
      failed(r, /executable file not found/);
    } finally {
      await forceDelete('enf');
    }
  });

  it('exec in a created or stopped container fails', async () => {
    const b = bundle(['true']);
    ok(await rt(['create', '--bundle', b.dir, 'exs']));
    try {
      failed(await rt(['exec', 'exs', 'true']), /created/);
      ok(await rt(['start', 'exs']));
      await until(async () => (await state('exs')).status === 'stopped', 'the container to stop');
      failed(await rt(['exec', 'exs', 'true']), /stopped/);
    } finally {
      await forceDelete('exs');
    }
  });

  it('--process FILE runs the process JSON as given (args, env, cwd, user)', async () => {
    await running('exp');
    try {
      const proc = sb.writeFile('process.json', JSON.stringify({
        args: ['sh', '-c', 'echo "$MARK $(pwd) $(id -u):$(id -g)"; exit 2'],
        env: ['PATH=/bin', 'MARK=from-process-json'],
        cwd: '/tmp',
        user: { uid: 1000, gid: 1000 },
      }));
      const r = await rt(['exec', '--process', proc, 'exp']);
      ok(r, 2);
      expect(r.stdout.trim()).toBe('from-process-json /tmp 1000:1000');
    } finally {
      await forceDelete('exp');
    }
  });

  it('-e, --cwd and --user set the exec\'s environment, directory and credentials', async () => {
    // with the spec's default rlimits: set on a non-root process (launcher.ts)
    await running('exo');
    try {
      const r = await rt(['exec', '-e', 'A=1', '--env', 'B=two', '--cwd', '/home/user', '--user', '1000:29', 'exo', 'sh', '-c', 'echo "$A $B $(pwd) $(id -u) $(id -g)"']);
      ok(r);
      expect(r.stdout.trim()).toBe('1 two /home/user 1000 29');
    } finally {
      await forceDelete('exo');
    }
  });

  it('--detach --pid-file: returns at once, the pid file names the running exec process', async () => {
    const b = await running('exd');
    try {
      const pidFile = join(sb.dir, 'exec.pid');
      const r = await rt(['exec', '--detach', '--pid-file', pidFile, 'exd', 'sh', '-c', 'echo $$ > /out/execpid; sleep 30']);
      ok(r);
      // returned while the exec'd process still runs (it sleeps 30 s): checked below
      const text = readFileSync(pidFile, 'utf8');
      expect(text).toMatch(/^\d+$/);
      const pid = Number(text);
      expect(alive(pid)).toBe(true);
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/sleep|sh/);
      const cpid = Number((await state('exd')).pid);
      expect(readlinkSync(`/proc/${pid}/ns/pid`)).toBe(readlinkSync(`/proc/${cpid}/ns/pid`));
      await waitForFile(join(b.out, 'execpid'), /\d/);
      ok(await rt(['delete', '--force', 'exd']));
      await until(() => !alive(pid), 'the detached exec to die with its container', 5000);
    } finally {
      await forceDelete('exd');
    }
  });
});

describe('tsrun-runtime list, ps, spec, features, run', () => {
  it('list --format json shows containers with their status', async () => {
    const b = bundle(['sleep', '60']);
    ok(await rt(['create', '--bundle', b.dir, 'l1']));
    try {
      const r = await rt(['list', '--format', 'json']);
      ok(r);
      const rows = JSON.parse(r.stdout) as { id: string; status: string; pid: number; bundle: string }[];
      expect(rows.map((x) => [x.id, x.status, x.bundle])).toEqual([['l1', 'created', b.dir]]);
      const q = await rt(['list', '-q']);
      expect(q.stdout.trim()).toBe('l1');
    } finally {
      await forceDelete('l1');
    }
  });

  it('run (foreground) passes the exit status and output through and leaves no state', async () => {
    const b = bundle(['sh', '-c', 'echo out-line; echo err-line >&2; exit 4']);
    const r = await rt(['run', '--bundle', b.dir, 'fg']);
    ok(r, 4);
    expect(r.stdout).toBe('out-line\n');
    expect(r.stderr).toMatch(/err-line/);
    expect(runtimeIds(rtRoot(sb))).not.toContain('fg');
  });

  it('--trace narrates the runtime verbs too: a bare --trace before the verb is not taken as its mode', async () => {
    const b = bundle(['true']);
    const r = await rt(['--trace', 'run', '--bundle', b.dir, 'tr']);
    ok(r);
    expect(r.stderr).toMatch(/^setup +syscall +pivot_root\("\.", "\."\) = 0 .*# /m);
    expect(r.stderr).toMatch(/^main +syscall +open\(".*exec\.fifo", O_WRONLY/m);
  });

  it('features lists the hooks and namespaces; --systemd-cgroup fails clearly here (no systemd)', async () => {
    const f = await rt(['features']);
    ok(f);
    const j = JSON.parse(f.stdout) as { hooks: string[]; linux: { namespaces: string[] } };
    expect(j.hooks).toEqual(expect.arrayContaining(['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']));
    expect(j.linux.namespaces).toEqual(expect.arrayContaining(['pid', 'network', 'mount', 'ipc', 'uts', 'cgroup']));
    const hasSystemd = readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd';
    if (!hasSystemd) failed(await rt(['--systemd-cgroup', 'list']), /systemd/);
  });
});
