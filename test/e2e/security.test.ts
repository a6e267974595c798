// Security regression tests: each one tries an escape or a host-wide change from
// inside a default container and asserts that it fails, and that the host is
// untouched. Where Docker lets --privileged or a capability do it, the test checks
// that too, so a test cannot pass merely because the container is broken.
//
// Busybox covers the shell-level attempts (mount, unshare, nsenter, insmod, writes to
// /proc and /sys). For exact errnos (EPERM from seccomp vs. ENOSYS/EACCES from the
// kernel) a small static C probe is compiled at test time with gcc -static; those
// tests are skipped when no static toolchain is installed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname as hostHostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExit, useSandbox, type Sandbox } from '../helpers/sandbox.js';
import { TempDirs, mountsUnder } from '../helpers/tempdirs.js';
import { makeBundle, runtime, runtimeIds, waitForFile } from '../helpers/bundle.js';

const PROBE_C = String.raw`#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *op, long r) {
  if (r < 0) printf("%s=%s\n", op, strerrorname_np(errno));
  else printf("%s=ok\n", op);
  fflush(stdout);
}

static long child_or_wait(long r) {
  if (r == 0) _exit(0);
  if (r > 0) waitpid((pid_t)r, NULL, __WALL);
  return r;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *op = argv[i];
    char buf[256] = {0};
    long r;
    errno = 0;
    if (!strcmp(op, "mount")) r = mount("tmpfs", "/mnt", "tmpfs", 0, NULL);
    else if (!strcmp(op, "umount")) r = umount2("/proc/sys", MNT_DETACH);
    else if (!strcmp(op, "unshare_user")) r = unshare(CLONE_NEWUSER);
    else if (!strcmp(op, "unshare_mnt")) r = unshare(CLONE_NEWNS);
    else if (!strcmp(op, "unshare_fs")) r = unshare(CLONE_FS);
    else if (!strcmp(op, "setns")) { int fd = open("/proc/self/ns/uts", O_RDONLY); r = setns(fd, CLONE_NEWUTS); }
    else if (!strcmp(op, "clone_newuser")) r = child_or_wait(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    else if (!strcmp(op, "clone3")) { unsigned long long a[11] = {0}; a[4] = SIGCHLD; r = child_or_wait(syscall(SYS_clone3, a, sizeof a)); }
    else if (!strcmp(op, "keyctl")) r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
    else if (!strcmp(op, "add_key")) r = syscall(SYS_add_key, "user", "tsrun-probe", "x", 1, -3);
    else if (!strcmp(op, "bpf")) r = syscall(SYS_bpf, 0, buf, 72);
    else if (!strcmp(op, "perf")) { buf[4] = 112; r = syscall(SYS_perf_event_open, buf, 0, -1, -1, 0); }
    else if (!strcmp(op, "userfaultfd")) r = syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
    else if (!strcmp(op, "finit_module")) { int fd = open("/dev/null", O_RDONLY); r = syscall(SYS_finit_module, fd, "", 0); }
    else if (!strcmp(op, "init_module")) r = syscall(SYS_init_module, buf, 16, "");
    else if (!strcmp(op, "kexec")) r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
    else if (!strcmp(op, "open_by_handle")) { buf[0] = 8; buf[4] = 1; r = syscall(SYS_open_by_handle_at, AT_FDCWD, buf, O_RDONLY); }
    else if (!strcmp(op, "swapon")) r = swapon("/dev/null", 0);
    else if (!strcmp(op, "reboot")) r = syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* LINUX_REBOOT_CMD_CAD_OFF: harmless */, 0);
    else if (!strcmp(op, "clock_settime")) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t); r = clock_settime(CLOCK_REALTIME, &t); }
    else if (!strcmp(op, "io_uring")) r = syscall(SYS_io_uring_setup, 1, buf);
    else if (!strcmp(op, "personality")) { r = personality(0xffffffff); if (r >= 0) { r = personality(ADDR_NO_RANDOMIZE); if (r >= 0) personality(0); } }
    else if (!strcmp(op, "vsock")) r = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
    else if (!strcmp(op, "enosys")) r = syscall(1000);
    else if (!strcmp(op, "x32")) r = syscall(0x40000000 | SYS_getpid);
    else if (!strcmp(op, "x32mount")) r = syscall(0x40000000 | SYS_mount, "tmpfs", "/mnt", "tmpfs", 0, 0);
    else if (!strncmp(op, "ptrace:", 7)) { pid_t p = atoi(op + 7); r = ptrace(PTRACE_ATTACH, p, 0, 0); if (r == 0) { waitpid(p, NULL, __WALL); ptrace(PTRACE_DETACH, p, 0, 0); } }
    else if (!strncmp(op, "mkdir:", 6)) r = mkdir(op + 6, 0755);
    else { fprintf(stderr, "unknown op %s\n", op); return 2; }
    report(op, r);
  }
  return 0;
}
`;

const probeDirs = new TempDirs();
let probeBin: string | null = null;

beforeAll(() => {
  const dir = probeDirs.make('probe');
  writeFileSync(join(dir, 'probe.c'), PROBE_C);
  try {
    execFileSync('gcc', ['-static', '-O1', '-o', join(dir, 'probe'), join(dir, 'probe.c')], { stdio: 'pipe' });
    probeBin = join(dir, 'probe');
  } catch {
    probeBin = null; // no gcc or no static libc: the probe tests skip
  }
});
afterAll(() => {
  probeDirs.removeAll();
});

/** The default rootfs plus the probe in /bin and an empty /mnt. */
function rootfsWithProbe(sb: Sandbox): string {
  const root = sb.rootfs();
  if (probeBin && !existsSync(join(root, 'bin/probe'))) copyFileSync(probeBin, join(root, 'bin/probe'));
  mkdirSync(join(root, 'mnt'), { recursive: true });
  return root;
}

/** Runs the probe's ops in a container; returns op -> result ("ok" or an errno name). */
async function probe(sb: Sandbox, ops: string[], flags: string[] = []): Promise<Record<string, string>> {
  const r = await sb.tsrun(['run', '--rootfs', rootfsWithProbe(sb), ...flags, '--', 'probe', ...ops]);
  expectExit(r, 0);
  return Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
}

/** Whether tsrun's own capability set is complete: --privileged asks for all of them. */
const ALWAYS_DENIED = ['mount', 'umount', 'unshare_user', 'unshare_mnt', 'setns', 'clone_newuser', 'keyctl', 'add_key', 'bpf', 'perf',
  'userfaultfd', 'finit_module', 'init_module', 'kexec', 'open_by_handle', 'swapon', 'reboot', 'clock_settime', 'io_uring', 'personality', 'vsock', 'x32mount'];

describe('security: the default seccomp profile', () => {
  const sb = useSandbox();

  it('is installed: Seccomp mode 2 with one filter, and no_new_privs stays off unless asked', async () => {
    const r = await sb.run(['grep', '-E', '^(Seccomp|Seccomp_filters|NoNewPrivs):', '/proc/self/status']);
    expectExit(r, 0);
    expect(r.stdout).toBe('NoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n');
    const nnp = await sb.run(['grep', '-E', '^(Seccomp|NoNewPrivs):', '/proc/self/status'], ['--security-opt', 'no-new-privileges']);
    expectExit(nnp, 0);
    expect(nnp.stdout).toBe('NoNewPrivs:\t1\nSeccomp:\t2\n');
  });

  it('denies with EPERM the syscalls that reach the host kernel, even those no capability guards', async (ctx) => {
    if (!probeBin) ctx.skip();
    const got = await probe(sb, [...ALWAYS_DENIED, 'unshare_fs', 'clone3', 'enosys']);
    for (const op of ALWAYS_DENIED) expect(got[op], op).toBe('EPERM');
    expect(got.unshare_fs).toBe('ok'); // unshare without namespace flags is harmless
    expect(got.clone3).toBe('ENOSYS'); // so glibc falls back to clone, whose flags seccomp can see
    expect(got.enosys).toBe('ENOSYS');
  });

  it('is what denies them: unconfined, the unprivileged ones work again', async (ctx) => {
    if (!probeBin) ctx.skip();
    // Each of these needs no capability, so only seccomp stopped them above.
    const got = await probe(sb, ['keyctl', 'userfaultfd', 'personality', 'io_uring', 'clone3', 'unshare_user'], ['--security-opt', 'seccomp=unconfined']);
    expect(got).toEqual({ keyctl: 'ok', userfaultfd: 'ok', personality: 'ok', io_uring: 'ok', clone3: 'ok', unshare_user: 'ok' });
  });

  it('kills a process that enters through an ABI its profile does not list (x32 on x86_64)', async (ctx) => {
    if (!probeBin || process.arch !== 'x64') ctx.skip();
    const profile = sb.writeFile('x86_64-only.json', JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], syscalls: [] }));
    const r = await sb.tsrun(['run', '--rootfs', rootfsWithProbe(sb), '--security-opt', `seccomp=${profile}`, '--', 'probe', 'x32']);
    expectExit(r, 128 + 31); // SIGSYS
  });
});

describe('security: attacks from a default container fail', () => {
  const sb = useSandbox();

  it('mount, unshare and setns (busybox mount, unshare, nsenter)', async () => {
    const root = sb.rootfs();
    mkdirSync(join(root, 'mnt'), { recursive: true });
    for (const cmd of [['mount', '-t', 'tmpfs', 'x', '/mnt'], ['mount', '--bind', '/', '/mnt'], ['unshare', '-m', 'true'], ['unshare', '-U', 'true'],
      ['unshare', '-p', '-f', 'true'], ['nsenter', '-t', '1', '-m', 'true'], ['nsenter', '-t', '1', '-u', 'true']]) {
      const r = await sb.run(cmd);
      expect(r.exitCode, cmd.join(' ')).not.toBe(0);
      expect(r.stderr, cmd.join(' ')).toMatch(/Operation not permitted|permission denied/i);
    }
  });

  it('kernel module loading (insmod)', async () => {
    const root = sb.rootfs();
    writeFileSync(join(root, 'tmp/evil.ko'), 'not really a module');
    const r = await sb.run(['insmod', '/tmp/evil.ko']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/Operation not permitted/);
  });

  it('writing /proc/sysrq-trigger, /proc/sys/kernel/* and /sys', async () => {
    // Only harmless values are written: "h" to sysrq (print help to the kernel log),
    // and each file's own current value, so a regression changes nothing on the host.
    const script = [
      'echo h > /proc/sysrq-trigger && echo sysrq=written',
      'v=$(cat /proc/sys/kernel/panic) && echo "$v" > /proc/sys/kernel/panic && echo panic=written',
      'v=$(cat /proc/sys/kernel/hostname) && echo "$v" > /proc/sys/kernel/hostname && echo khost=written',
      'v=$(cat /sys/kernel/mm/transparent_hugepage/enabled | sed "s/.*\\[\\(.*\\)\\].*/\\1/") && echo "$v" > /sys/kernel/mm/transparent_hugepage/enabled && echo sys=written',
      'touch /sys/kernel/tsrun-probe && echo systouch=written',
      'true',
    ].join('; ');
    const r = await sb.run(['sh', '-c', script]);
    expectExit(r, 0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Read-only file system/);
  });

  it('reading /proc/kcore (and /proc/keys, /proc/timer_list) gives nothing', async () => {
    const r = await sb.run(['sh', '-c', 'for f in /proc/kcore /proc/keys /proc/timer_list; do echo "$f $(head -c 64 $f 2>/dev/null | wc -c)"; done']);
    expectExit(r, 0);
    expect(r.stdout).toBe('/proc/kcore 0\n/proc/keys 0\n/proc/timer_list 0\n');
  });

  it('mknod of the host\'s disk works (CAP_MKNOD, as in Docker) but opening it does not', async () => {
    const dev = statSync(REAL_ROOT_DEV()).rdev;
    const major = Math.floor(dev / 256) & 0xfff;
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    const r = await sb.run(['sh', '-c', `mknod /tmp/disk b ${major} ${minor} && echo made; head -c 512 /tmp/disk | wc -c; echo 1 > /tmp/disk && echo wrote; ls /dev`]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^made\n0\n/);
    expect(r.stdout).not.toContain('wrote');
    expect(r.stderr).toMatch(/Operation not permitted/);
    // No block device is there to begin with.
    expect(r.stdout).not.toMatch(/\b(sd[a-z]|vd[a-z]|nvme\w*|xvd[a-z]|loop\d+|dm-\d+)\b/);
  });

  it('changing the hostname: refused without CAP_SYS_ADMIN; with it, only the container\'s changes', async () => {
    const before = hostHostname();
    const denied = await sb.run(['hostname', 'evil-host']);
    expect(denied.exitCode).not.toBe(0);
    const own = await sb.run(['sh', '-c', 'hostname inside-only && hostname'], ['--cap-add', 'SYS_ADMIN']);
    expectExit(own, 0);
    expect(own.stdout).toBe('inside-only\n');
    expect(hostHostname()).toBe(before);
  });

  it('killing a host process: its pid does not exist in the container', async () => {
    const victim: ChildProcess = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const pid = victim.pid!;
      const r = await sb.run(['sh', '-c', `kill -9 ${pid}; kill -0 ${pid}; ls -d /proc/${pid} 2>&1; exit 0`]);
      expectExit(r, 0);
      expect(r.stderr).toMatch(/No such process/);
      expect(victim.exitCode).toBe(null);
      expect(() => process.kill(pid, 0)).not.toThrow();
    } finally {
      victim.kill('SIGKILL');
    }
  });

  it('ptrace of PID 1: the host\'s PID 1 cannot be named, and another user cannot trace the container\'s own', async (ctx) => {
    if (!probeBin) ctx.skip();
    rootfsWithProbe(sb);
    // Inside, PID 1 is the container's command, not the host's init.
    const who = await sb.run(['cat', '/proc/1/cmdline']);
    expect(who.stdout).toBe('cat\0/proc/1/cmdline\0');
    // A host pid is not in the container's PID namespace at all.
    const r = await sb.run(['sh', '-c', `probe ptrace:${process.pid}; su -s /bin/sh user -c "probe ptrace:1"`]);
    expectExit(r, 0);
    expect(r.stdout).toBe(`ptrace:${process.pid}=ESRCH\nptrace:1=EPERM\n`);
  });
});

describe('security: custom and unconfined profiles', () => {
  const sb = useSandbox();

  it('a profile that denies mkdir makes mkdir fail with EPERM; unconfined lifts it', async () => {
    const profile = sb.writeFile('no-mkdir.json', JSON.stringify({
      defaultAction: 'SCMP_ACT_ALLOW',
      // Docker's format: archMap plus per-entry filters, as `docker run --security-opt` takes
      archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }, { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: [] }],
      syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
    }));
    const denied = await sb.run(['sh', '-c', 'mkdir /tmp/d; echo rc=$?; grep ^Seccomp: /proc/self/status'], ['--security-opt', `seccomp=${profile}`]);
    expectExit(denied, 0);
    expect(denied.stdout).toBe('rc=1\nSeccomp:\t2\n');
    expect(denied.stderr).toMatch(/can't create directory '\/tmp\/d': Operation not permitted/);
    const open = await sb.run(['sh', '-c', 'mkdir /tmp/d && echo made; grep ^Seccomp: /proc/self/status'], ['--security-opt', 'seccomp=unconfined']);
    expectExit(open, 0);
    expect(open.stdout).toBe('made\nSeccomp:\t0\n');
  });

  it('a bad profile is tsrun\'s own error (125) and starts nothing', async () => {
    const bad = sb.writeFile('bad.json', JSON.stringify({ defaultAction: 'SCMP_ACT_SOMETIMES' }));
    const r = await sb.run(['true'], ['--security-opt', `seccomp=${bad}`]);
    expectExit(r, 125);
    expect(r.stderr).toMatch(/SCMP_ACT_SOMETIMES/);
    const missing = await sb.run(['true'], ['--security-opt', `seccomp=${join(sb.dir, 'nope.json')}`]);
    expectExit(missing, 125);
    const apparmor = await sb.run(['true'], ['--security-opt', 'apparmor=docker-default']);
    expectExit(apparmor, 125);
    expect(apparmor.stderr).toMatch(/AppArmor/);
  });
});

describe('security: --privileged lifts what Docker lifts', () => {
  const sb = useSandbox();

  it('mount, unshare and nsenter work; no seccomp filter; masked paths are gone', async () => {
    // --privileged means every capability tsrun itself holds (as Docker's means the
    // daemon's), so it works on a host whose root lacks some (here CAP_SYS_RESOURCE).
    const root = sb.rootfs();
    mkdirSync(join(root, 'mnt'), { recursive: true });
    const script = 'mount -t tmpfs x /mnt && echo mounted; unshare -m true && echo unshared; nsenter -t 1 -u true && echo entered; grep ^Seccomp: /proc/self/status; head -c 16 /proc/timer_list | wc -c';
    const r = await sb.run(['sh', '-c', script], ['--privileged']);
    expectExit(r, 0);
    expect(r.stdout).toBe('mounted\nunshared\nentered\nSeccomp:\t0\n16\n');
  });
});

describe('security: CVE-2024-21626 (leaked fds and cwd)', () => {
  const sb = useSandbox();

  it('no host fd reaches the container: only 0-2, even when tsrun is started with more', async () => {
    const r = await sb.run(['sh', '-c', 'cd /proc/$$/fd && for f in [0-9]*; do [ -e "$f" ] && echo "$f $(readlink $f)"; done; true'], [], { extraFds: 4 });
    expectExit(r, 0);
    const fds = r.stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    expect(fds).toEqual(['0', '1', '2']);
  });

  it('-w /proc/self/fd/N cannot start the container in a host directory', async () => {
    for (const n of [3, 4, 5, 6, 7, 8, 9, 10, 15, 20]) {
      const r = await sb.run(['sh', '-c', 'readlink /proc/self/cwd; ls ..'], ['-w', `/proc/self/fd/${n}`], { extraFds: 2 });
      if (r.exitCode === 0) {
        // Only acceptable if the cwd is inside the container's own tree.
        expect(r.stdout, `-w /proc/self/fd/${n}`).not.toMatch(/\/(run|var\/lib)\/tsrun|tsrun-e2e|state|\(unreachable\)/);
      } else {
        expect([125, 126, 127], `-w /proc/self/fd/${n}: ${r.stderr}`).toContain(r.exitCode);
        expect(r.stdout).toBe('');
      }
    }
  });
});

describe('security: CVE-2019-5736 (overwriting the runtime binary through /proc/PID/exe)', () => {
  const sb = useSandbox();

  it('PID 1 is the container\'s binary, and no /proc/*/exe inside can be opened for writing', async () => {
    const node = process.execPath;
    const before = statSync(node);
    // ": >>" opens for appending and writes nothing: a regression is detected without
    // modifying any binary.
    const script = [
      'readlink /proc/1/exe',
      // (a failed redirection on the special builtin ":" would end the shell: hence the subshells)
      'for p in /proc/[0-9]* /proc/self; do e=$(readlink $p/exe) || continue; if (: >> $p/exe) 2>/dev/null; then echo "WRITABLE $p $e"; fi; done',
      '(: >> /proc/self/exe) 2>/dev/null || echo self-refused',
    ].join('; ');
    const r = await sb.run(['sh', '-c', `sleep 5 & ${script}`]);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('/bin/busybox');
    expect(r.stdout).not.toContain('WRITABLE');
    expect(lines).toContain('self-refused');
    const after = statSync(node);
    expect([after.size, after.mtimeMs, after.ctimeMs]).toEqual([before.size, before.mtimeMs, before.ctimeMs]);
  });
});

describe('security: CVE-2019-5736 during exec', () => {
  const sb = useSandbox();

  it('processes entering a running container (tsrun-runtime exec) expose no openable exe to it', async () => {
    // The exec'd process is posix_spawned by a Node thread that joined the container's
    // PID namespace: until its execve, /proc/PID/exe of that child is the host's node.
    // A watcher inside keeps scanning for any exe that is not its own busybox and tries
    // to open it for writing (without writing a byte).
    const watch = [
      'while [ ! -e /out/stop ]; do',
      '  for p in /proc/[0-9]*; do',
      '    e=$(readlink $p/exe 2>/dev/null) || continue',
      '    [ "$e" = /bin/busybox ] && continue',
      // The 2019 exploit's first step: hold a read-only fd on the runtime's binary and
      // reopen it for writing through /proc/self/fd once the runtime has exited (and
      // the text is no longer busy). So even opening it must fail.
      '    if (exec 3< $p/exe) 2>/dev/null; then echo "OPENABLE $p $e" >> /out/log; fi',
      '    if (: >> $p/exe) 2>/dev/null; then echo "WRITABLE $p $e" >> /out/log; fi',
      '  done',
      'done; echo finished >> /out/log',
    ].join('\n');
    const b = makeBundle(join(sb.dir, 'bundle'), { args: ['sh', '-c', watch] });
    const root = join(sb.root, 'run');
    const rt = (args: string[]) => runtime(args, { root, outDir: join(sb.dir, 'io') });
    const node = statSync(process.execPath);
    const id = 'cve-5736';
    try {
      expect((await rt(['create', '--bundle', b.dir, id])).exitCode).toBe(0);
      expect((await rt(['start', id])).exitCode).toBe(0);
      for (let i = 0; i < 6; i++) {
        const r = await rt(['exec', id, 'true']);
        expect(r.exitCode, r.stderr).toBe(0);
      }
      writeFileSync(join(b.out, 'stop'), '');
      const log = await waitForFile(join(b.out, 'log'), /finished/);
      expect(log).not.toContain('WRITABLE');
      expect(log).not.toContain('OPENABLE');
    } finally {
      if (runtimeIds(root).includes(id)) await rt(['delete', '--force', id]);
    }
    const after = statSync(process.execPath);
    expect([after.size, after.mtimeMs, after.ctimeMs]).toEqual([node.size, node.mtimeMs, node.ctimeMs]);
  });
});

describe('security: symlinked mount destinations (CVE-2021-30465 class)', () => {
  const sb = useSandbox();

  it('a destination through a symlink to / or .. lands inside the rootfs, never on the host', async () => {
    const root = sb.rootfs();
    symlinkSync('/', join(root, 'to-root'));
    symlinkSync('../../../../../../../..', join(root, 'to-up'));
    const src = sb.mkdir('volume');
    writeFileSync(join(src, 'marker'), 'from-the-volume\n');
    const tag = `tsrun-e2e-cve30465-${process.pid}`;
    const hostPaths = [`/${tag}-bind`, `/${tag}-tmpfs`];
    try {
      const r = await sb.run(['sh', '-c', `cat /${tag}-bind/marker; grep -c ${tag} /proc/self/mountinfo`],
        ['-v', `${src}:/to-root/${tag}-bind`, '--tmpfs', `/to-up/${tag}-tmpfs`]);
      expectExit(r, 0);
      expect(r.stdout).toBe('from-the-volume\n2\n');
      for (const p of hostPaths) {
        expect(existsSync(p), `${p} on the host`).toBe(false);
        expect(mountsUnder(p)).toEqual([]);
      }
      // The mount points were made inside the rootfs instead.
      expect(existsSync(join(root, `${tag}-bind`))).toBe(true);
      expect(existsSync(join(root, `${tag}-tmpfs`))).toBe(true);
    } finally {
      for (const p of hostPaths) {
        for (const m of mountsUnder(p)) execFileSync('umount', ['-l', m]);
        rmSync(p, { recursive: true, force: true });
      }
    }
  });
});

/** The block device holding the host's root filesystem (e.g. /dev/vda). */
function REAL_ROOT_DEV(): string {
  const src = execFileSync('findmnt', ['-no', 'SOURCE', '/'], { encoding: 'utf8' }).trim();
  return src.startsWith('/dev/') ? src : '/dev/null';
}
