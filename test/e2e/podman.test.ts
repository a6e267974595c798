// Podman (Debian's 4.3, through conmon) driving bin/tsrun-runtime: the proof
// that a real engine can use tsrun's runtime face unchanged. Everything lives in one
// temp dir per test (storage, run state, events, tmux socket) and is removed after.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { useSandbox } from '../helpers/sandbox.js';
import { makePodman, podmanInstalled, type Podman, type PodmanResult } from '../helpers/podman.js';
import { until } from '../helpers/wait.js';

const IMAGE = 'localhost/tsrun-bb:latest';
const sb = useSandbox();
let pm: Podman;

function ok(r: PodmanResult, code = 0): void {
  expect(r.timedOut, `timed out: ${r.command}`).toBe(false);
  expect(r.exitCode, `exit status of ${r.command}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(code);
}

describe.runIf(podmanInstalled())('podman --runtime tsrun-runtime', () => {
  beforeEach(async () => {
    pm = makePodman(sb.mkdir('podman'));
    await pm.importRootfs(sb.rootfs(), IMAGE);
  });

  afterEach(async () => {
    // No assertions here: a throwing afterEach would skip the sandbox's leak check and
    // temp dir removal. podman, conmon's exit command and the runtime write only under
    // the podman dir, which the sandbox removes (and checks for mounts and processes).
    await pm.destroy();
  });

  it('run --rm IMAGE echo hi', async () => {
    const r = await pm.run(['run', '--rm', '--network', 'none', IMAGE, 'echo', 'hi']);
    ok(r);
    expect(r.stdout).toBe('hi\n');
    const ps = await pm.run(['ps', '-aq']);
    expect(ps.stdout.trim()).toBe('');
  });

  it('run passes the exit status through; a missing command is 127', async () => {
    ok(await pm.run(['run', '--rm', '--network', 'none', IMAGE, 'sh', '-c', 'exit 7']), 7);
    const r = await pm.run(['run', '--rm', '--network', 'none', IMAGE, 'no-such-cmd']);
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toMatch(/not found/);
  });

  it('run -d, exec, logs, stop, rm', async () => {
    const script = "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.1; done";
    const d = await pm.run(['run', '-d', '--network', 'none', '--name', 'bg', IMAGE, 'sh', '-c', script]);
    ok(d);
    const id = d.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const insp = await pm.run(['inspect', '-f', '{{.State.Status}} {{.State.Pid}}', 'bg']);
    ok(insp);
    const [status, pidText] = insp.stdout.trim().split(' ');
    expect(status).toBe('running');
    const pid = Number(pidText);
    expect(pid).toBeGreaterThan(0);
    // the container's pid is ours: its root is the podman container's rootfs
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/^sh\0-c\0/);

    const ex = await pm.run(['exec', 'bg', 'sh', '-c', 'echo from-exec $(readlink /proc/1/ns/pid) $$']);
    ok(ex);
    expect(ex.stdout).toMatch(/^from-exec /);
    expect(ex.stdout.split(' ')[1]).toBe(readlinkSync(`/proc/${pid}/ns/pid`));
    ok(await pm.run(['exec', 'bg', 'sh', '-c', 'exit 3']), 3);
    const exEnv = await pm.run(['exec', '-e', 'X=y', '-w', '/tmp', 'bg', 'sh', '-c', 'echo $X $(pwd)']);
    ok(exEnv);
    expect(exEnv.stdout).toBe('y /tmp\n');

    await until(async () => /started/.test((await pm.run(['logs', 'bg'])).stdout), 'the container\'s output in podman logs');

    const st = await pm.run(['stop', '-t', '10', 'bg']);
    ok(st);
    const after = await pm.run(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'bg']);
    expect(after.stdout.trim()).toBe('exited 0');
    expect((await pm.run(['logs', 'bg'])).stdout).toMatch(/started\ngot-term\n/);
    ok(await pm.run(['rm', 'bg']));
    expect((await pm.run(['ps', '-aq'])).stdout.trim()).toBe('');
    await until(() => !existsSync(`/proc/${pid}`), 'the container process to be gone', 5000);
  });

  // podman always sends rlimits, which tsrun sets on the waiting non-root process
  // with prlimit(2), as the container's real uid where root lacks CAP_SYS_RESOURCE.
  it('exec -u 1000 and run -u 1000 (a non-root process under podman\'s default rlimits)', async () => {
    const r = await pm.run(['run', '--rm', '--network', 'none', '-u', '1000', IMAGE, 'id', '-u']);
    ok(r);
    expect(r.stdout).toBe('1000\n');
    ok(await pm.run(['run', '-d', '--network', 'none', '--name', 'u', IMAGE, 'sleep', '60']));
    const e = await pm.run(['exec', '-u', '1000', 'u', 'id', '-u']);
    ok(e);
    expect(e.stdout).toBe('1000\n');
  });

  it('run -it in tmux: the terminal arrives through conmon\'s console socket', async () => {
    const sock = join(sb.dir, 'tmux.sock');
    const tmux = (...a: string[]): string => execFileSync('tmux', ['-S', sock, ...a], { encoding: 'utf8' });
    const cmd = pm.shellCommand(['run', '-it', '--rm', '--network', 'none', IMAGE, 'sh']);
    tmux('new-session', '-d', '-s', 'it', '-x', '100', '-y', '30', `${cmd}; echo podman-exit=$?; sleep 30`);
    try {
      const pane = (): string => tmux('capture-pane', '-p', '-t', 'it');
      // capture-pane drops trailing blanks: busybox's prompt "/ # " reads as "/ #"
      await until(() => /^\/ #/m.test(pane()), 'the shell prompt', 20_000);
      tmux('send-keys', '-t', 'it', 'echo $((6*7)); tty; stty size', 'Enter');
      await until(() => /^42$/m.test(pane()), 'the answer', 10_000);
      const text = pane();
      expect(text).toMatch(/^\/dev\/pts\/\d+$/m);
      expect(text).toMatch(/^30 100$/m);
      tmux('send-keys', '-t', 'it', 'exit 5', 'Enter');
      await until(() => /podman-exit=5/.test(pane()), 'podman to exit with the shell\'s status', 15_000);
    } finally {
      spawnSync('tmux', ['-S', sock, 'kill-server'], { stdio: 'ignore' });
    }
  });

  it('run --memory: the limit holds and the OOM kill is reported', async () => {
    // 64 MiB of data in a 16 MiB container: the kernel's OOM killer must end it (made by
    // `yes`, not read from /dev/zero: no device access, so only the memory limit is tested)
    const r = await pm.run(['run', '--name', 'oom', '--network', 'none', '--memory', '16m', '--memory-swap', '16m', IMAGE, 'sh', '-c', 'x=$(yes abcdefgh | head -c 67108864); echo survived ${#x}']);
    expect(r.stdout, `the container was not limited: ${r.stderr}`).not.toMatch(/survived/);
    expect(r.exitCode).toBe(137);
    // conmon watched the memory cgroup tsrun-runtime made from podman's cgroupsPath and saw the OOM kill
    expect(existsSync(join(pm.dir, 'oom')), 'conmon\'s OOM marker').toBe(true);
    const insp = await pm.run(['inspect', '-f', '{{.State.OOMKilled}} {{.State.ExitCode}}', 'oom']);
    // Known: podman 4.3 here reports OOMKilled=false for runc as well (it does not read
    // conmon's marker back), so only the exit status is podman's own report.
    expect(insp.stdout.trim()).toMatch(/^(true|false) 137$/);
  });

  it('pause and unpause: the container stops making progress, then resumes', async () => {
    ok(await pm.run(['run', '-d', '--network', 'none', '--name', 'pz', IMAGE, 'sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done']));
    const count = async (): Promise<number> => (await pm.run(['logs', 'pz'])).stdout.split('\n').filter(Boolean).length;
    await until(async () => (await count()) > 3, 'the counter to run');
    const p = await pm.run(['pause', 'pz']);
    ok(p);
    expect((await pm.run(['inspect', '-f', '{{.State.Status}}', 'pz'])).stdout.trim()).toBe('paused');
    const a = await count();
    await new Promise((res) => setTimeout(res, 1000));
    expect(await count()).toBe(a);
    ok(await pm.run(['unpause', 'pz']));
    await until(async () => (await count()) > a + 3, 'the counter to run again');
  });
});
