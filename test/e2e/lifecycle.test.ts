// The detached container lifecycle (issue 5), driven through the real CLI as a docker
// user would: records, the shared monitor, logs, exec, stop/kill/rm, restart policies,
// --init, health checks, pause, cp, rename, prune, and crash safety (kill -9 of the
// foreground run, of exec and of the monitor; a simulated reboot).
//
// Every test runs under its own TSRUN_ROOT and its own cgroup parent, removes every
// container it made, and the sandbox then checks that no process, mount, state dir or
// cgroup of its containers is left.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { TSRUN_BIN } from '../helpers/tsrun.js';
import { TmuxSession, haveTmux } from '../helpers/tmux.js';
import { alive, sleep, until } from '../helpers/wait.js';
import { lifecycleKit } from '../helpers/lifecycle.js';


describe('lifecycle', () => {
  const sb = useSandbox();
  const kit = lifecycleKit(sb, 'lc');
  const { parent, env, ts, runD, inspect, monitorPid, waitFor } = kit;

  afterEach(kit.cleanup);

  it('foreground runs leave records: ps -a, inspect, rm; --rm leaves none', async () => {
    const r = await ts(['run', '--rootfs', sb.rootfs(), '--name', 'fg', '--', 'sh', '-c', 'echo hi; exit 3']);
    expectExit(r, 3);
    expect(r.stdout).toBe('hi\n');
    const ps = await ts(['ps', '-a']);
    expect(ps.stdout.split('\n')[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    expect(ps.stdout).toMatch(/Exited \(3\) .* ago\s+fg\n/);
    expect((await ts(['ps'])).stdout.trim().split('\n')).toHaveLength(1); // not running: only with -a
    const j = JSON.parse((await ts(['inspect', 'fg'])).stdout) as Array<{ State: { Status: string; ExitCode: number; Running: boolean; FinishedAt: string }; Name: string; Id: string }>;
    expect(j[0]!.State).toMatchObject({ Status: 'exited', ExitCode: 3, Running: false });
    expect(Date.parse(j[0]!.State.FinishedAt)).toBeGreaterThan(Date.now() - 120_000);
    expect(j[0]!.Name).toBe('/fg');
    // the same name twice is refused, docker's words
    const dup = await ts(['run', '--rootfs', sb.rootfs(), '--name', 'fg', '--', 'true']);
    expectExit(dup, 125);
    expect(dup.stderr).toMatch(/name "\/fg" is already in use/);
    // any unique prefix works
    expectExit(await ts(['rm', j[0]!.Id.slice(0, 5)]), 0);
    expect((await ts(['ps', '-aq'])).stdout).toBe('');
    expectExit(await ts(['run', '--rm', '--rootfs', sb.rootfs(), '--', 'true']), 0);
    expect((await ts(['ps', '-aq'])).stdout).toBe('');
    const miss = await ts(['inspect', 'nosuch']);
    expect(miss.exitCode).toBe(1);
    expect(miss.stderr).toMatch(/no such container: nosuch/);
  });

  it('run -d: ps, logs (streams apart, --tail, -t, --since, -f), inspect, stop with SIGKILL after -t, wait, rm', async () => {
    const id = await runD(['--name', 'web'], ['sh', '-c', 'echo out1; echo err1 >&2; echo out2; i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done']);
    const ps = await ts(['ps']);
    expect(ps.stdout).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+\\S+\\s+"sh -c echo out1; ec…"\\s+.*\\s+Up .*\\s+web$`, 'm'));
    const pid = Number(await inspect('web', '{{.State.Pid}}'));
    expect(alive(pid)).toBe(true);
    expect(await inspect('web', '{{.State.Status}} {{.State.Running}}')).toBe('running true');
    await waitFor('ticks', async () => (await ts(['logs', 'web'])).stdout.includes('tick 2'));
    const logs = await ts(['logs', 'web']);
    expect(logs.stdout.startsWith('out1\nout2\ntick 0\n')).toBe(true);
    expect(logs.stderr).toBe('err1\n');
    const tail = await ts(['logs', '--tail', '2', 'web']);
    expect(tail.stdout.trim().split('\n')).toHaveLength(2);
    expect(tail.stdout).toMatch(/^tick \d+\ntick \d+\n$/);
    const t = await ts(['logs', '-t', '--tail', '1', 'web']);
    expect(t.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z tick \d+\n$/);
    const since = await ts(['logs', '--since', new Date(Date.now() + 60_000).toISOString(), 'web']);
    expect(since.stdout + since.stderr).toBe('');
    // -f follows until the container stops
    const follow = sb.spawn(['logs', '-f', '--tail', '0', 'web'], { env });
    await sleep(800);
    const stop = await ts(['stop', '-t', '1', 'web']); // sh as PID 1 ignores SIGTERM: SIGKILL after 1 s
    expectExit(stop, 0);
    expect(stop.stdout).toBe('web\n');
    const f = await follow;
    expect(f.exitCode).toBe(0);
    expect(String(f.stdout)).toMatch(/tick \d+\n/);
    expect(alive(pid)).toBe(false);
    expect(await inspect('web', '{{.State.Status}} {{.State.ExitCode}} {{.State.Running}} {{.State.Pid}}')).toBe('exited 137 false 0');
    expect((await ts(['wait', 'web'])).stdout).toBe('137\n');
    const rm = await ts(['rm', 'web']);
    expectExit(rm, 0);
    expect(existsSync(join(sb.root, 'containers', id))).toBe(false);
  });

  it('create + start -a, wait, restart, kill -s, rm of a running container needs -f', async () => {
    const c = await ts(['create', '--rootfs', sb.rootfs(), '--name', 'two', '--', 'sh', '-c', 'echo started; exit 7']);
    expectExit(c, 0);
    expect(await inspect('two', '{{.State.Status}}')).toBe('created');
    const s = await ts(['start', '-a', 'two']);
    expect(s.stdout).toBe('started\n');
    expectExit(s, 7);
    expect((await ts(['wait', 'two'])).stdout).toBe('7\n');

    await runD(['--name', 'sig'], ['sh', '-c', 'trap "echo got-usr1; exit 5" USR1; while true; do sleep 0.1; done']);
    expectExit(await ts(['kill', '-s', 'USR1', 'sig']), 0);
    expect((await ts(['wait', 'sig'])).stdout).toBe('5\n');
    expect((await ts(['logs', 'sig'])).stdout).toBe('got-usr1\n');
    expectExit(await ts(['restart', 'sig']), 0);
    expect(await inspect('sig', '{{.State.Status}}')).toBe('running');
    const refuse = await ts(['rm', 'sig']);
    expectExit(refuse, 125);
    expect(refuse.stderr).toMatch(/container is running/);
    expectExit(await ts(['rm', '-f', 'sig', 'two']), 0);
    expect((await ts(['ps', '-aq'])).stdout).toBe('');
  });

  it('exec: -e -w -u, the container\'s caps/seccomp/no_new_privs and cgroup, a PID 1 that is no shell, 127 for a missing command, -d', async () => {
    const id = await runD(['--name', 'ex', '--cap-drop', 'NET_RAW', '--security-opt', 'no-new-privileges'], ['sleep', '1000']);
    const r = await ts(['exec', '-e', 'FOO=bar', '-w', '/tmp', 'ex', 'sh', '-c', 'echo "$FOO $(pwd) $(id -u)"; ps -o pid,comm | sed -n 2p']);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^bar \/tmp 0\n\s*1 sleep\n$/);
    expect((await ts(['exec', '-u', '1000', 'ex', 'id', '-u'])).stdout).toBe('1000\n');
    expect((await ts(['exec', '-u', 'nobody', 'ex', 'id', '-un'])).stdout).toBe('nobody\n');
    // The exec process carries what PID 1 carries.
    const pid1 = Number(await inspect('ex', '{{.State.Pid}}'));
    const field = (status: string, k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)![1]!;
    const hostStatus = readFileSync(`/proc/${pid1}/status`, 'utf8');
    const st = (await ts(['exec', 'ex', 'cat', '/proc/self/status'])).stdout;
    for (const k of ['CapEff', 'CapBnd', 'NoNewPrivs', 'Seccomp']) expect(field(st, k), k).toBe(field(hostStatus, k));
    expect(field(st, 'NoNewPrivs')).toBe('1');
    // ...and joins its cgroup (the host's view of both processes)
    const d = await ts(['exec', '-d', 'ex', 'sleep', '77']);
    expectExit(d, 0);
    const top = (await ts(['top', 'ex'])).stdout;
    const line = top.split('\n').find((l) => l.includes('sleep 77'));
    expect(line, top).toBeTruthy();
    const epid = Number(line!.trim().split(/\s+/)[1]);
    expect(readFileSync(`/proc/${epid}/cgroup`, 'utf8')).toBe(readFileSync(`/proc/${pid1}/cgroup`, 'utf8'));
    expect(readFileSync(`/proc/${pid1}/cgroup`, 'utf8')).toContain(`${parent}/${id}`);
    const missing = await ts(['exec', 'ex', 'nosuchcmd']);
    expectExit(missing, 127);
    expect(missing.stderr).toMatch(/nosuchcmd.*not found/);
    expect((await ts(['exec', 'ex', 'sh', '-c', 'exit 9'])).exitCode).toBe(9);
    expectExit(await ts(['rm', '-f', 'ex']), 0);
    expect(alive(epid)).toBe(false);
    expectExit(await ts(['exec', 'ex', 'true']), 125);
  });

  it('run -dt logs the terminal\'s output; run -a is the foreground default and conflicts with -d', async () => {
    await runD(['-t', '--name', 'dt'], ['sh', '-c', 'tty; echo hi; sleep 1000']);
    await waitFor('output', async () => (await ts(['logs', 'dt'])).stdout.includes('hi'));
    expect((await ts(['logs', 'dt'])).stdout).toBe('/dev/pts/0\r\nhi\r\n');
    expect((await ts(['exec', 'dt', 'readlink', '/proc/1/fd/1'])).stdout).toBe('/dev/pts/0\n');
    expectExit(await ts(['rm', '-f', 'dt']), 0);
    const a = await ts(['run', '--rm', '-a', 'stdout', '-a', 'stderr', '--rootfs', sb.rootfs(), '--', 'echo', 'attached']);
    expectExit(a, 0);
    expect(a.stdout).toBe('attached\n');
    const c = await ts(['run', '-d', '-a', 'stdout', '--rootfs', sb.rootfs(), '--', 'true']);
    expectExit(c, 125);
    expect(c.stderr).toMatch(/conflicting options: -a and -d/);
  });

  it.skipIf(!haveTmux())('exec -it: a shell in a terminal', async () => {
    await runD(['--name', 'tty'], ['sleep', '1000']);
    const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = sb.writeFile('pane.sh', [
      `TSRUN_ROOT=${q(sb.root)} TMPDIR=${q(sb.tmp)} TSRUN_CGROUP_PARENT=${parent} ${q(TSRUN_BIN)} exec -it tty sh`,
      'echo "EXEC-EXIT=$?"',
      'exec sleep 300',
    ].join('\n') + '\n', 0o755);
    const t = TmuxSession.start(join(sb.dir, 'tmux.sock'), `sh ${q(script)}`);
    try {
      await t.waitFor(/^\/ #/m);
      t.type('tty | sed s/^/TTY=/');
      expect((await t.waitFor(/^TTY=(.*)$/m))[1]).toBe('/dev/pts/0');
      t.type('echo SUM=$((6*7))');
      await t.waitFor(/^SUM=42$/m);
      t.type('exit 4');
      await t.waitFor(/^EXEC-EXIT=4$/m);
    } finally {
      t.tmux('kill-server');
    }
    expectExit(await ts(['rm', '-f', 'tty']), 0);
  });

  it('restart policies: on-failure:N counts, always restarts until stopped, with backoff', async () => {
    await runD(['--name', 'fail', '--restart', 'on-failure:2'], ['sh', '-c', 'echo run; exit 2']);
    await waitFor('two restarts', async () => (await inspect('fail', '{{.State.Status}} {{.RestartCount}}')) === 'exited 2');
    expect(await inspect('fail', '{{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}')).toBe('2 on-failure');
    expect((await ts(['logs', 'fail'])).stdout).toBe('run\nrun\nrun\n');
    await runD(['--name', 'alw', '--restart', 'always'], ['sh', '-c', 'sleep 0.2; exit 0']);
    await waitFor('a restart', async () => Number(await inspect('alw', '{{.RestartCount}}')) >= 2);
    expectExit(await ts(['stop', 'alw']), 0);
    const n = await inspect('alw', '{{.RestartCount}}');
    await sleep(1500);
    expect(await inspect('alw', '{{.State.Status}} {{.RestartCount}}')).toBe(`exited ${n}`);
    expectExit(await ts(['run', '--rm', '--restart', 'always', '--rootfs', sb.rootfs(), '--', 'true']), 125);
    expectExit(await ts(['rm', 'fail', 'alw']), 0);
  });

  it('--init: tini is PID 1, reaps a daemon\'s zombies and forwards stop\'s SIGTERM', async () => {
    // The inner shell exits at once; its background sleep is reparented to PID 1 and
    // becomes a zombie when it ends unless PID 1 reaps it.
    await runD(['--name', 'ini', '--init'], ['sh', '-c', 'sh -c "sleep 0.3 &"; exec sleep 1000']);
    await runD(['--name', 'noini'], ['sh', '-c', 'sh -c "sleep 0.3 &"; exec sleep 1000']);
    await sleep(1500);
    const states = async (n: string): Promise<string> => (await ts(['exec', n, 'sh', '-c', 'cat /proc/[0-9]*/stat | cut -d" " -f2,3'])).stdout;
    expect(await states('ini')).not.toMatch(/ Z/);
    expect(await states('noini')).toMatch(/\(sleep\) Z/); // the control: without init the zombie stays
    expect((await ts(['exec', 'ini', 'cat', '/proc/1/cmdline'])).stdout.split('\0')[0]).toBe('/sbin/docker-init');
    expectExit(await ts(['stop', '-t', '10', 'ini']), 0);
    // tini forwarded SIGTERM and the command died of it (128+15), not the SIGKILL path (137)
    expect(await inspect('ini', '{{.State.ExitCode}}')).toBe('143');
    expectExit(await ts(['rm', '-f', 'ini', 'noini']), 0);
  });

  it('health checks show in ps and inspect', async () => {
    await runD(['--name', 'hc', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '300ms', '--health-retries', '2'], ['sleep', '1000']);
    await waitFor('unhealthy', async () => (await ts(['ps', '--format', '{{.Status}}'])).stdout.includes('(unhealthy)'));
    expectExit(await ts(['exec', 'hc', 'touch', '/tmp/ok']), 0);
    await waitFor('healthy', async () => (await inspect('hc', '{{.State.Health.Status}}')) === 'healthy');
    expect((await ts(['ps', '--filter', 'health=healthy', '-q'])).stdout.trim()).toHaveLength(12);
    expect(await inspect('hc', '{{json .Config.Healthcheck.Test}}')).toBe('["CMD-SHELL","test -f /tmp/ok"]');
    expectExit(await ts(['rm', '-f', 'hc']), 0);
  });

  it('pause/unpause freeze the cgroup; rename; ps filters and json; container prune', async () => {
    const id = await runD(['--name', 'pz'], ['sh', '-c', 'while true; do echo x; sleep 0.1; done']);
    expectExit(await ts(['pause', 'pz']), 0);
    expect(await inspect('pz', '{{.State.Status}} {{.State.Paused}}')).toBe('paused true');
    const fr = ['freezer/' + parent + '/' + id + '/freezer.state', 'unified/' + parent + '/' + id + '/cgroup.freeze'].map((p) => join('/sys/fs/cgroup', p)).find((p) => existsSync(p))!;
    expect(readFileSync(fr, 'utf8').trim()).toMatch(/^(FROZEN|1)$/);
    const n1 = (await ts(['logs', 'pz'])).stdout.length;
    await sleep(600);
    expect((await ts(['logs', 'pz'])).stdout.length).toBe(n1);
    expect((await ts(['ps', '--format', '{{.Names}} {{.Status}}'])).stdout).toMatch(/^pz Up .* \(Paused\)$/m);
    expectExit(await ts(['unpause', 'pz']), 0);
    await waitFor('output again', async () => (await ts(['logs', 'pz'])).stdout.length > n1);
    expectExit(await ts(['rename', 'pz', 'renamed']), 0);
    expect(await inspect(id.slice(0, 8), '{{.Name}}')).toBe('/renamed');
    await ts(['run', '--rootfs', sb.rootfs(), '--name', 'done', '--', 'true']);
    const js = (await ts(['ps', '-a', '--format', 'json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { Names: string; State: string });
    expect(js.map((j) => `${j.Names}:${j.State}`).sort()).toEqual(['done:exited', 'renamed:running']);
    expect((await ts(['ps', '-a', '--filter', 'status=exited', '--format', '{{.Names}}'])).stdout).toBe('done\n');
    const prune = await ts(['container', 'prune', '-f']);
    expectExit(prune, 0);
    expect((await ts(['ps', '-a', '--format', '{{.Names}}'])).stdout).toBe('renamed\n');
    expectExit(await ts(['rm', '-f', 'renamed']), 0);
  });

  it('cp in and out through the container root; symlinks cannot lead to the host', async () => {
    const hostDir = sb.mkdir('hostside');
    writeFileSync(join(hostDir, 'secret'), 'host secret\n');
    await runD(['--name', 'cp'], ['sleep', '1000']);
    sb.writeFile('in.txt', 'hello in\n');
    expectExit(await ts(['cp', join(sb.dir, 'in.txt'), 'cp:/tmp/']), 0);
    expect((await ts(['exec', 'cp', 'cat', '/tmp/in.txt'])).stdout).toBe('hello in\n');
    // A symlink in the container that would reach the host's file if followed on the host.
    await ts(['exec', 'cp', 'sh', '-c', `echo inside > /tmp/real; ln -s ../../../../../../..${hostDir}/secret /tmp/evil; mkdir -p /x; ln -s ../../../../../../..${hostDir} /tmp/evildir`]);
    const out = join(sb.dir, 'out.txt');
    const r = await ts(['cp', 'cp:/tmp/evil', out]);
    expect(r.exitCode).not.toBe(0); // resolved in the container: no such file there
    expect(existsSync(out) ? readFileSync(out, 'utf8') : '').not.toContain('host secret');
    // Writing through a symlinked directory lands inside the container, never in hostDir.
    const w = await ts(['cp', join(sb.dir, 'in.txt'), 'cp:/tmp/evildir/planted']);
    expect(existsSync(join(hostDir, 'planted'))).toBe(false);
    if (w.exitCode === 0) expect((await ts(['exec', 'cp', 'cat', `${hostDir}/planted`])).stdout).toBe('hello in\n');
    // A directory out, recursively
    await ts(['exec', 'cp', 'sh', '-c', 'mkdir -p /data/sub; echo a > /data/a; echo b > /data/sub/b']);
    expectExit(await ts(['cp', 'cp:/data', join(sb.dir, 'got')]), 0);
    expect(readFileSync(join(sb.dir, 'got', 'sub', 'b'), 'utf8')).toBe('b\n');
    expectExit(await ts(['rm', '-f', 'cp']), 0);
  });

  it('log rotation keeps max-file files of about max-size', async () => {
    const id = await runD(['--name', 'rot', '--log-opt', 'max-size=2k', '--log-opt', 'max-file=2'], ['sh', '-c', 'i=0; while [ $i -lt 400 ]; do echo "line $i"; i=$((i+1)); done']);
    expect((await ts(['wait', 'rot'])).stdout).toBe('0\n');
    const dir = join(sb.root, 'containers', id);
    const logs = readdirSync(dir).filter((f) => f.includes('-json.log')).sort();
    expect(logs).toEqual([`${id}-json.log`, `${id}-json.log.1`]);
    for (const f of logs) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(2048);
    expect((await ts(['logs', '--tail', '1', 'rot'])).stdout).toBe('line 399\n');
    expectExit(await ts(['rm', 'rot']), 0);
  });

  it('kill -9 of the monitor: the container keeps running, a new monitor adopts it, logs go on, stop and rm work', async () => {
    await runD(['--name', 'ad'], ['sh', '-c', 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.1; done']);
    const pid = Number(await inspect('ad', '{{.State.Pid}}'));
    const m = monitorPid()!;
    process.kill(m, 'SIGKILL');
    await waitFor('the monitor to die', () => !alive(m));
    await sleep(700); // output written while no monitor runs stays in the pipe
    expect(alive(pid)).toBe(true);
    expect(await inspect('ad', '{{.State.Status}}')).toBe('running');
    expectExit(await ts(['exec', 'ad', 'true']), 0);
    // A command that needs the monitor starts a new one, which adopts the container.
    expectExit(await ts(['pause', 'ad']), 0);
    expectExit(await ts(['unpause', 'ad']), 0);
    const m2 = monitorPid()!;
    expect(m2).not.toBe(m);
    await sleep(500);
    const ticks = (await ts(['logs', 'ad'])).stdout.trim().split('\n').map((l) => Number(l.split(' ')[1]));
    expect(ticks.length).toBeGreaterThan(10);
    expect(ticks).toEqual(ticks.map((_, i) => i)); // no line lost or repeated across the restart
    expectExit(await ts(['stop', '-t', '0', 'ad']), 0);
    expect(alive(pid)).toBe(false);
    expect(await inspect('ad', '{{.State.Status}} {{.State.ExitCode}} {{.State.ExitCodeUnknown}}')).toBe('exited 255 true');
    expectExit(await ts(['rm', 'ad']), 0);
  });

  it('kill -9 of the foreground tsrun run and of tsrun exec: ps tells the truth, nothing is left', async () => {
    const fg = sb.spawn(['run', '--rootfs', sb.rootfs(), '--name', 'fgk', '--', 'sleep', '1000'], { env });
    await waitFor('running', async () => (await ts(['ps', '--format', '{{.Names}} {{.State}}'])).stdout.includes('fgk running'));
    const pid = Number(await inspect('fgk', '{{.State.Pid}}'));
    // Not `await fg`: the container still holds tsrun's stdout pipe, so execa would wait for it.
    const fgGone = new Promise((r) => fg.once('exit', r));
    fg.kill('SIGKILL');
    await fgGone;
    // The next command collects the orphan (documented): the container is killed.
    const ps = await ts(['ps', '-a', '--format', '{{.Names}} {{.State}}']);
    expect(ps.stdout).toContain('fgk exited');
    await waitFor('the orphan to die', () => !alive(pid));
    expect(await inspect('fgk', '{{.State.ExitCode}} {{.State.ExitCodeUnknown}}')).toBe('255 true');

    await runD(['--name', 'exk'], ['sleep', '1000']);
    const ex = sb.spawn(['exec', 'exk', 'sleep', '555'], { env });
    await waitFor('the exec process', async () => (await ts(['top', 'exk'])).stdout.includes('sleep 555'));
    const exGone = new Promise((r) => ex.once('exit', r));
    ex.kill('SIGKILL');
    await exGone;
    // The exec'd process stays in the container (its cgroup), like docker's; the container is fine.
    expect(await inspect('exk', '{{.State.Status}}')).toBe('running');
    expectExit(await ts(['exec', 'exk', 'true']), 0);
    expectExit(await ts(['rm', '-f', 'fgk', 'exk']), 0);
    await Promise.all([fg, ex]); // their pipes close with the containers
    expect(readdirSync(join(sb.root, 'run', 'containers'))).toEqual([]);
  });

  it('after a reboot (runtime dir cleared) containers read as exited and start again', async () => {
    await runD(['--name', 'rb'], ['sleep', '1000']);
    const pid = Number(await inspect('rb', '{{.State.Pid}}'));
    const id = await inspect('rb', '{{.Id}}');
    // A reboot kills everything and empties the tmpfs at /run/tsrun.
    process.kill(monitorPid()!, 'SIGKILL');
    process.kill(pid, 'SIGKILL');
    await waitFor('the container to die', () => !alive(pid));
    for (const h of readdirSync('/sys/fs/cgroup')) {
      try {
        rmdirSync(join("/sys/fs/cgroup", h, parent, id));
      } catch {
        /* the kernel removes nothing by itself; a reboot would have */
      }
    }
    rmSync(join(sb.root, 'run'), { recursive: true, force: true });
    mkdirSync(join(sb.root, 'run', 'containers'), { recursive: true });
    expect((await ts(['ps', '-a', '--format', '{{.Names}} {{.State}}'])).stdout).toBe('rb exited\n');
    expectExit(await ts(['start', 'rb']), 0);
    expect(await inspect('rb', '{{.State.Status}}')).toBe('running');
    expectExit(await ts(['rm', '-f', 'rb']), 0);
  });

  it('a corrupt record is reported, not trusted, and rm -f removes it', async () => {
    await runD(['--name', 'cor'], ['sh', '-c', 'exit 0']);
    expect((await ts(['wait', 'cor'])).stdout).toBe('0\n');
    const id = await inspect('cor', '{{.Id}}');
    writeFileSync(join(sb.root, 'containers', id, 'config.json'), '{"id": "trunc');
    const ps = await ts(['ps', '-a']);
    expect(ps.stderr).toMatch(/corrupt/);
    const i = await ts(['inspect', id]);
    expect(i.stderr).toMatch(/corrupt/);
    expectExit(await ts(['rm', '-f', id]), 0);
    expect(existsSync(join(sb.root, 'containers', id))).toBe(false);
  });
});
