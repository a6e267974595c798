// attach (issue 5): stdin into a -di container through its stdin FIFO, a -dit
// container's terminal through the monitor (keystrokes, window size, detach keys),
// start -a -i, and a -dt terminal that outlives a kill -9 of the monitor.
//
// Every test runs under its own TSRUN_ROOT and cgroup parent and removes what it made;
// the sandbox then checks that nothing of it is left (the pty holder included: its cwd
// is the container's runtime dir, inside the sandbox).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { TSRUN_BIN, waitForOutput } from '../helpers/tsrun.js';
import { TmuxSession, haveTmux } from '../helpers/tmux.js';
import { alive, sleep } from '../helpers/wait.js';
import { lifecycleKit } from '../helpers/lifecycle.js';


describe('lifecycle: attach', () => {
  const sb = useSandbox();
  const kit = lifecycleKit(sb, 'at');
  const { parent, env, ts, runD, inspect, monitorPid, waitFor } = kit;
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  /** A tmux pane running `tsrun ARGS`, then printing its exit status. */
  const pane = (args: string, size = { cols: 100, rows: 30 }): TmuxSession => {
    const script = sb.writeFile(`pane-${randomBytes(3).toString('hex')}.sh`, [
      `TSRUN_ROOT=${q(sb.root)} TMPDIR=${q(sb.tmp)} TSRUN_CGROUP_PARENT=${parent} ${q(TSRUN_BIN)} ${args}`,
      'echo "ATTACH-EXIT=$?"',
      'exec sleep 300',
    ].join('\n') + '\n', 0o755);
    return TmuxSession.start(join(sb.dir, `tmux-${randomBytes(3).toString('hex')}.sock`), `sh ${q(script)}`, size);
  };

  afterEach(kit.cleanup);

  it('foreground runs keep their output in the json log (stdout and stderr apart, -t as stdout); --rm keeps none', async () => {
    const r = await ts(['run', '--name', 'fg', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'echo out1; echo err1 >&2; echo out2; readlink /proc/self/fd/1; printf tail; exit 3']);
    expectExit(r, 3);
    expect(r.stdout).toMatch(/^out1\nout2\npipe:\[\d+\]\ntail$/); // an anonymous pipe: no host path
    expect(r.stderr).toBe('err1\n');
    const l = await ts(['logs', 'fg']);
    expect(l.stdout).toBe(r.stdout);
    expect(l.stderr).toBe('err1\n');
    expect(await inspect('fg', '{{.LogPath}}')).toBe(join(sb.root, 'containers', await inspect('fg', '{{.Id}}'), `${await inspect('fg', '{{.Id}}')}-json.log`));
    // more than a pipe's worth, in order
    const big = await ts(['run', '--name', 'big', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done']);
    expectExit(big, 0);
    const lines = (await ts(['logs', 'big'])).stdout.trim().split('\n');
    expect(lines).toEqual(Array.from({ length: 3000 }, (_, i) => `line ${i}`));
    expect(big.stdout.trim().split('\n')).toEqual(lines);
    const t = await ts(['run', '-t', '--name', 'fgt', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'echo on-tty; echo also >&2']);
    expectExit(t, 0);
    expect((await ts(['logs', 'fgt'])).stdout).toBe('on-tty\r\nalso\r\n');
    expectExit(await ts(['run', '--rm', '--rootfs', sb.rootfs(), '--', 'echo', 'gone']), 0);
    expect((await ts(['ps', '-aq'])).stdout.trim().split('\n')).toHaveLength(3);
    expectExit(await ts(['rm', 'fg', 'big', 'fgt']), 0);
  });

  it('TSRUN_MONITOR_LINGER_MS: an idle monitor lingers, the next run -d finds it, then it exits', async () => {
    const lenv = { ...env, TSRUN_MONITOR_LINGER_MS: '2000' };
    const a = await sb.tsrun(['run', '-d', '--rootfs', sb.rootfs(), '--', 'sleep', '1000'], { env: lenv });
    expectExit(a, 0);
    const m = monitorPid()!;
    expectExit(await sb.tsrun(['rm', '-f', a.stdout.trim()], { env: lenv }), 0);
    await sleep(500);
    expect(alive(m)).toBe(true); // idle, within its grace
    const b = await sb.tsrun(['run', '-d', '--rootfs', sb.rootfs(), '--', 'sleep', '1000'], { env: lenv });
    expectExit(b, 0);
    expect(monitorPid()).toBe(m);
    expectExit(await sb.tsrun(['rm', '-f', b.stdout.trim()], { env: lenv }), 0);
    await waitFor('the idle monitor to exit after its grace', () => !alive(m), 15_000);
    expect(existsSync(join(sb.root, 'run', 'monitor.sock'))).toBe(false);
  });

  it('run -di: attach pipes stdin in and the output out; the container never reads EOF; attach ends with its exit status', async () => {
    await runD(['-i', '--name', 'cat'], ['cat']);
    // A first attach sends a line, sees it come back, and closes its stdin.
    const a1 = sb.spawn(['attach', 'cat'], { env, stdin: 'pipe' });
    await sleep(300); // attach reads the log from its end: what cat echoes after this
    a1.stdin!.write('one\n');
    await waitForOutput(a1, /one\n/);
    a1.stdin!.end();
    await sleep(500);
    // docker's -i without StdinOnce: the end of one attach's input is no EOF for the container.
    expect(await inspect('cat', '{{.State.Status}}')).toBe('running');
    const a2 = sb.spawn(['attach', 'cat'], { env, stdin: 'pipe' });
    await sleep(300);
    a2.stdin!.write('two\n');
    await waitForOutput(a2, /two\n/);
    expectExit(await ts(['stop', '-t', '1', 'cat']), 0); // cat as PID 1 ignores SIGTERM
    const [r1, r2] = await Promise.all([a1, a2]);
    expect(r1.exitCode).toBe(137);
    expect(r2.exitCode).toBe(137);
    expect(String(r2.stdout)).toBe('two\n');
    expect((await ts(['logs', 'cat'])).stdout).toBe('one\ntwo\n');
    // A shell reads its commands from attach; attach leaves with the shell's status.
    await runD(['-i', '--name', 'sh'], ['sh']);
    const s = await ts(['attach', 'sh'], { input: 'echo "from $((40+2))"\nexit 3\n' });
    expectExit(s, 3);
    expect(s.stdout).toBe('from 42\n');
    // --no-stdin: nothing reaches the container
    await runD(['-i', '--name', 'ns'], ['sh']);
    const ns = sb.spawn(['attach', '--no-stdin', 'ns'], { env, stdin: 'pipe' });
    ns.stdin!.end('exit 9\n');
    await sleep(800);
    expect(await inspect('ns', '{{.State.Status}}')).toBe('running');
    expectExit(await ts(['kill', 'ns']), 0);
    expect((await ns).exitCode).toBe(137);
    // without -i the container's stdin is /dev/null, whatever attach gets
    await runD(['--name', 'noi'], ['sh', '-c', 'cat; echo "cat-done $?"; sleep 1000']);
    await waitFor('cat to end', async () => (await ts(['logs', 'noi'])).stdout.includes('cat-done 0'));
    expectExit(await ts(['rm', '-f', 'cat', 'sh', 'ns', 'noi']), 0);
  });

  it('run -di: --sig-proxy forwards attach\'s signals; start -a -i attaches before the start', async () => {
    await runD(['-i', '--name', 'trap'], ['sh', '-c', 'trap "echo got-usr1" USR1; while true; do sleep 0.1; done']);
    const a = sb.spawn(['attach', 'trap'], { env, stdin: 'pipe' });
    await sleep(800);
    a.kill('SIGUSR1');
    await waitForOutput(a, /got-usr1\n/);
    expectExit(await ts(['rm', '-f', 'trap']), 0);
    await a;
    const c = await ts(['create', '-i', '--name', 'cr', '--rootfs', sb.rootfs(), '--', 'sh']);
    expectExit(c, 0);
    const s = await ts(['start', '-a', '-i', 'cr'], { input: 'echo started-$((1+1))\nexit 6\n' });
    expectExit(s, 6);
    expect(s.stdout).toBe('started-2\n');
    // -i on a container made without it is refused
    expectExit(await ts(['create', '--name', 'plain', '--rootfs', sb.rootfs(), '--', 'true']), 0);
    const p = await ts(['start', '-a', '-i', 'plain']);
    expectExit(p, 125);
    expect(p.stderr).toMatch(/not created with -i/);
    expectExit(await ts(['rm', '-f', 'cr', 'plain']), 0);
  });

  it.skipIf(!haveTmux())('run -dit: attach is the terminal (keys, window size), ctrl-p ctrl-q detaches, a second attach exits with the shell', async () => {
    await runD(['-it', '--name', 'tty'], ['sh']);
    const t = pane('attach tty', { cols: 91, rows: 27 });
    try {
      t.type('echo SUM=$((6*7)); stty size | sed s/^/SIZE=/');
      await t.waitFor(/^SUM=42$/m);
      expect((await t.waitFor(/^SIZE=(.*)$/m))[1]).toBe('27 91');
      t.keys('C-p', 'C-q');
      await t.waitFor(/read escape sequence/);
      expect((await t.waitFor(/^ATTACH-EXIT=(\d+)$/m))[1]).toBe('1'); // docker's status for a detach
    } finally {
      t.kill();
    }
    expect(await inspect('tty', '{{.State.Status}}')).toBe('running');
    // custom detach keys; a lone ctrl-p still reaches the shell (it is held, then passed on)
    const t2 = pane('attach --detach-keys ctrl-x tty', { cols: 70, rows: 20 });
    try {
      t2.type('stty size | sed s/^/SIZE2=/');
      expect((await t2.waitFor(/^SIZE2=(.*)$/m))[1]).toBe('20 70');
      t2.type('exit 4');
      expect((await t2.waitFor(/^ATTACH-EXIT=(\d+)$/m))[1]).toBe('4');
    } finally {
      t2.kill();
    }
    expect(await inspect('tty', '{{.State.Status}} {{.State.ExitCode}}')).toBe('exited 4');
    expect((await ts(['logs', 'tty'])).stdout).toMatch(/SUM=42\r\n/);
    expectExit(await ts(['rm', 'tty']), 0);
  });

  it('a -dt container that dies while no monitor runs: the next command ends its pty holder', async () => {
    // --network none: a dead monitor's network endpoint is the network GC's business, not this test's
    const id = await runD(['-t', '--network', 'none', '--name', 'orphan'], ['sh', '-c', 'echo up; sleep 1000']);
    const st = JSON.parse(readFileSync(join(sb.root, 'run', 'containers', id, 'state.json'), 'utf8')) as { pid: number; ptyHolder?: { pid: number } };
    const holder = st.ptyHolder!.pid;
    expect(alive(holder)).toBe(true);
    expect(readFileSync(`/proc/${holder}/cmdline`, 'utf8').split('\0')[1]).toBe('infinity');
    const m = monitorPid()!;
    process.kill(m, 'SIGKILL');
    await waitFor('the monitor to die', () => !alive(m));
    await sleep(300);
    expect(alive(holder)).toBe(true); // the terminal outlives the monitor
    process.kill(st.pid, 'SIGKILL');
    await waitFor('the container to die', () => !alive(st.pid));
    // ps needs no monitor: it finds the container dead and unwatched, and cleans up after it
    expect((await ts(['ps', '-a', '--format', '{{.Names}} {{.State}}'])).stdout).toBe('orphan exited\n');
    await waitFor('the holder to be gone', () => !alive(holder), 5000);
    expectExit(await ts(['rm', 'orphan']), 0);
  });

  it.skipIf(!haveTmux())('kill -9 of the monitor: a -dt terminal stays up (no SIGHUP), a new monitor takes the pty back, logs and attach work, nothing is left', async () => {
    // The shell says if it ever gets SIGHUP: its terminal closing would send it.
    await runD(['-it', '--name', 'keep'], ['sh', '-c', 'trap "echo HUP >/got-hup" HUP; echo ready; sh; echo inner-exit']);
    await waitFor('output', async () => (await ts(['logs', 'keep'])).stdout.includes('ready'));
    const pid = Number(await inspect('keep', '{{.State.Pid}}'));
    const m = monitorPid()!;
    process.kill(m, 'SIGKILL');
    await waitFor('the monitor to die', () => !alive(m));
    await sleep(500);
    expect(alive(pid)).toBe(true);
    expect(await inspect('keep', '{{.State.Status}}')).toBe('running');
    // attach starts a new monitor, which adopts the container and its terminal
    const t = pane('attach keep');
    try {
      t.type('echo AFTER=$((2*21))');
      await t.waitFor(/^AFTER=42$/m);
      t.keys('C-p', 'C-q');
      await t.waitFor(/^ATTACH-EXIT=1$/m);
    } finally {
      t.kill();
    }
    expect(monitorPid()).not.toBe(m);
    expect((await ts(['exec', 'keep', 'sh', '-c', 'test -e /got-hup; echo $?'])).stdout).toBe('1\n');
    expect((await ts(['logs', 'keep'])).stdout).toMatch(/ready\r\n[\s\S]*AFTER=42\r\n/);
    expectExit(await ts(['rm', '-f', 'keep']), 0);
    expect(alive(pid)).toBe(false);
  });
});
