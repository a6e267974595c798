// Core runtime, the contract with the caller: exit statuses, error messages, signals
// forwarded to the container, stdin, and OCI bundles from `tsrun spec`.
import { chmodSync, chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, useSandbox, type Sandbox } from '../helpers/sandbox.js';
import { containerPids } from '../helpers/leaks.js';
import { waitForOutput } from '../helpers/tsrun.js';

describe('core: exit status', () => {
  const sb = useSandbox();

  it.each([0, 1, 3, 42, 255])('exit %i in the container is tsrun\'s exit status', async (n) => {
    const r = await sb.run(['sh', '-c', `exit ${n}`]);
    expectExit(r, n);
    expect(r.stderr).toBe('');
  });

  it('a missing command exits 127 with docker\'s message', async () => {
    const r = await sb.run(['foo']);
    expectExit(r, 127);
    expect(r.stderr.split('\n')[0]).toBe('tsrun: exec "foo": executable file not found in $PATH');
  });

  it('a missing absolute path also exits 127', async () => {
    const r = await sb.run(['/no/such/binary']);
    expectExit(r, 127);
    expect(r.stderr).toContain('/no/such/binary');
  });

  it('a file that is not executable exits 126', async () => {
    const rootfs = sb.rootfs();
    writeFileSync(join(rootfs, 'bin/notexec'), '#!/bin/sh\necho should-not-run\n');
    chmodSync(join(rootfs, 'bin/notexec'), 0o644);
    const r = await sb.run(['/bin/notexec']);
    expectExit(r, 126);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('/bin/notexec');
  });

  it('a directory as the command exits 126', async () => {
    const r = await sb.run(['/etc']);
    expectExit(r, 126);
  });

  it('death by SIGKILL gives 128+9', async () => {
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'echo ready; while :; do sleep 1; done']);
    await waitForOutput(sub, /ready/);
    const pids = containerPids(sb.rootfs());
    expect(pids.length).toBeGreaterThan(0);
    // PID 1 of a PID namespace ignores every signal it has no handler for, except
    // SIGKILL and SIGSTOP from an ancestor namespace: this is the one that kills it.
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch (e) {
        // Once PID 1 is dead the kernel kills the rest of its namespace: already gone.
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
    const r = await sub;
    expect(r.exitCode).toBe(137);
  });

  it('death by a kernel-sent SIGKILL (RLIMIT_CPU hard limit) gives 137, from inside', async () => {
    const r = await sb.run(['sh', '-c', 'while :; do :; done'], ['--ulimit', 'cpu=1:1'], { timeoutMs: 20_000 });
    expectExit(r, 137);
  });
});

describe('core: errors are tsrun\'s own (125) and leave no state', () => {
  const sb = useSandbox();

  it('not root: 125, the message, and nothing created under TSRUN_ROOT', async () => {
    // The sandbox dir is 0700 (mkdtemp); nobody must be able to reach the rootfs, or
    // tsrun would fail earlier for a different reason.
    chmodSync(sb.dir, 0o755);
    // And TSRUN_ROOT belongs to nobody: a tsrun that wrote state before checking for
    // root would succeed in writing it, and the check below would see it.
    for (const d of ['state', 'state/run', 'state/run/containers']) chownSync(join(sb.dir, d), 65534, 65534);
    const rootfs = sb.rootfs();
    const r = await sb.tsrun(['run', '--rootfs', rootfs, '--', 'true'], { wrapper: ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups'] });
    expectExit(r, 125);
    expect(r.stderr.split('\n')[0]).toBe('tsrun: tsrun needs root (or CAP_SYS_ADMIN) to create namespaces');
    // The sandbox pre-creates run/containers to watch it; tsrun must add nothing.
    expect(readdirSync(sb.root)).toEqual(['run']);
    expect(readdirSync(join(sb.root, 'run'))).toEqual(['containers']);
    expect(readdirSync(join(sb.root, 'run/containers'))).toEqual([]);
  });

  it('an unknown flag is 125', async () => {
    const r = await sb.tsrun(['run', '--no-such-flag', '--rootfs', sb.rootfs(), '--', 'true']);
    expectExit(r, 125);
  });

  it('a rootfs that does not exist is 125 and names it', async () => {
    const r = await sb.tsrun(['run', '--rootfs', join(sb.dir, 'nope'), '--', 'true']);
    expectExit(r, 125);
    expect(r.stderr).toContain(join(sb.dir, 'nope'));
  });

  const badSpecs: Array<[string, (spec: any) => unknown, RegExp]> = [
    ['process.args is not an array', (s) => ((s.process.args = 'sh'), s), /process\.args/],
    ['process.cwd is relative', (s) => ((s.process.cwd = 'tmp'), s), /process\.cwd/],
    ['process.user.uid is negative', (s) => ((s.process.user.uid = -1), s), /process\.user\.uid/],
    ['a mount destination is relative', (s) => ((s.mounts[0].destination = 'proc'), s), /mounts\[0\]\.destination/],
    ['an unknown capability', (s) => ((s.process.capabilities.bounding = ['CAP_NOPE']), s), /process\.capabilities\.bounding.*CAP_NOPE/],
    ['an unknown namespace type', (s) => ((s.linux.namespaces[1] = { type: 'bogus' }), s), /linux\.namespaces\[1\]\.type/],
    ['an unknown rlimit', (s) => ((s.process.rlimits = [{ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 }]), s), /process\.rlimits\[0\]\.type/],
    ['ociVersion missing', (s) => (delete s.ociVersion, s), /ociVersion/],
  ];

  it.each(badSpecs)('a malformed config.json (%s) is 125 and names the field', async (_label, mutate, field) => {
    const bundle = await makeBundle(sb);
    const spec = JSON.parse((await sb.tsrun(['spec'])).stdout);
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(mutate(spec)));
    const r = await sb.tsrun(['run', '--bundle', bundle]);
    expectExit(r, 125);
    expect(r.stderr).toMatch(field);
    expect(r.stderr).toMatch(/^tsrun: invalid OCI spec: /);
  });

  it('a config.json that is not JSON is 125', async () => {
    const bundle = await makeBundle(sb);
    writeFileSync(join(bundle, 'config.json'), '{ "ociVersion": ');
    const r = await sb.tsrun(['run', '--bundle', bundle]);
    expectExit(r, 125);
    expect(r.stderr).toContain('config.json');
  });
});

/** A bundle dir holding a busybox rootfs at ./rootfs (config.json is up to the test). */
async function makeBundle(sb: Sandbox): Promise<string> {
  const bundle = sb.mkdir('bundle');
  sb.rootfs('bundle/rootfs');
  return bundle;
}

describe('core: signals sent to tsrun reach the container', () => {
  const sb = useSandbox();

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const)('%s', async (sig) => {
    const name = sig.slice(3);
    // PID 1 only receives signals it has a handler for, so the trap is what proves
    // delivery; `wait` returns as soon as a trapped signal arrives.
    const script = `trap 'echo got-${name}; exit 0' ${name}; echo ready; while :; do sleep 5 & wait $!; done`;
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--', 'sh', '-c', script]);
    await waitForOutput(sub, /ready/);
    sub.kill(sig);
    const r = await sub;
    expect(r.stdout).toBe(`ready\ngot-${name}\n`);
    expect(r.exitCode).toBe(0);
  });

  it('several signals in a row all arrive, and tsrun keeps running until the container exits', async () => {
    const script = 'n=0; trap \'n=$((n+1)); echo got-$n\' USR1; echo ready; while [ $n -lt 3 ]; do sleep 5 & wait $!; done; exit 7';
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--', 'sh', '-c', script]);
    await waitForOutput(sub, /ready/);
    for (let i = 1; i <= 3; i++) {
      sub.kill('SIGUSR1');
      await waitForOutput(sub, new RegExp(`got-${i}`));
    }
    const r = await sub;
    expect(r.exitCode).toBe(7);
  });
});

describe('core: stdin', () => {
  const sb = useSandbox();

  it('-i passes stdin through to the container', async () => {
    const r = await sb.run(['sh', '-c', 'cat; echo end'], ['-i'], { input: 'line one\nline two\n' });
    expectExit(r, 0);
    expect(r.stdout).toBe('line one\nline two\nend\n');
  });

  it('-i passes binary data through unchanged', async () => {
    const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const r = await sb.run(['sh', '-c', 'od -An -tx1 -v | tr -d " \\n"'], ['-i'], { input: data });
    expectExit(r, 0);
    expect(r.stdout).toBe(data.toString('hex'));
  });

  it('without -i stdin is /dev/null, even when tsrun\'s stdin has data', async () => {
    const r = await sb.run(['sh', '-c', 'cat; echo end; readlink /proc/self/fd/0; stat -L -c "%t,%T" /proc/$$/fd/0'], [], { input: 'must not arrive\n' });
    expectExit(r, 0);
    // /dev/null is char device 1,3.
    expect(r.stdout).toBe('end\n/dev/null\n1,3\n');
  });
});

describe('core: tsrun spec and --bundle', () => {
  const sb = useSandbox();

  it('prints a valid runtime-spec config', async () => {
    const r = await sb.tsrun(['spec']);
    expectExit(r, 0);
    const spec = JSON.parse(r.stdout);
    expect(spec.ociVersion).toMatch(/^1\.\d+\.\d+/);
    expect(spec.root).toEqual({ path: 'rootfs', readonly: true });
    expect(spec.process.args).toEqual(['sh']);
    expect(spec.linux.namespaces.map((n: { type: string }) => n.type).sort()).toEqual(['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts']);
  });

  it('its output runs unchanged with run --bundle (stdin reaches its sh)', async () => {
    const bundle = await makeBundle(sb);
    const spec = await sb.tsrun(['spec']);
    writeFileSync(join(bundle, 'config.json'), spec.stdout);
    const r = await sb.tsrun(['run', '--bundle', bundle], {
      input: 'echo hello-from-spec; hostname; echo pid=$$; touch /x 2>/dev/null || echo root-ro; grep NoNewPrivs /proc/self/status; exit 5\n',
    });
    expectExit(r, 5);
    expect(r.stdout).toBe('hello-from-spec\ntsrun\npid=1\nroot-ro\nNoNewPrivs:\t1\n');
  });

  it('a relative root.path is resolved against the bundle, not the caller\'s cwd', async () => {
    const bundle = await makeBundle(sb);
    const spec = JSON.parse((await sb.tsrun(['spec'])).stdout);
    spec.process.args = ['cat', '/marker'];
    writeFileSync(join(bundle, 'rootfs/marker'), 'right rootfs\n');
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    mkdirSync(join(sb.dir, 'elsewhere/rootfs'), { recursive: true });
    const r = await sb.tsrun(['run', '--bundle', bundle], { cwd: join(sb.dir, 'elsewhere') });
    expectExit(r, 0);
    expect(r.stdout).toBe('right rootfs\n');
  });
});
