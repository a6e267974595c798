// seccomp: syscall tables, the BPF assembler, the OCI -> BPF compiler, the default
// profile and Docker profile conversion. Every program is run through a classic-BPF
// interpreter written here from linux/filter.h semantics, so a wrong jump or a wrong
// 64-bit comparison fails a test without root or a kernel.
import { describe, expect, it } from 'vitest';
import { Assembler, AUDIT_ARCH, BPF, RET, X32_SYSCALL_BIT, decode, encode, type Insn } from '../../src/security/seccomp/bpf.js';
import { actionValue, compileSeccomp, type LinuxSeccomp, type SeccompArg } from '../../src/security/seccomp/compile.js';
import { defaultSeccompProfile, kernelAllowsPtrace } from '../../src/security/seccomp/default-profile.js';
import { dockerProfileToOci } from '../../src/security/seccomp/docker-profile.js';
import { SYSCALL_TABLES } from '../../src/security/seccomp/tables.js';
import { SYS } from '../../src/linux/constants.js';
import { TsrunError } from '../../src/errors.js';
import { parseSecurityOpts, specFromFlags, type RunFlags } from '../../src/engine/run-spec.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Data {
  /** undefined only by mistake: a name missing from a table */
  nr: number | undefined;
  arch?: number;
  args?: Array<number | bigint>;
}

/** A classic BPF interpreter for seccomp programs: what the kernel's checker allows seccomp to use. */
function runBpf(prog: Insn[], d: Data): number {
  if (d.nr === undefined) throw new Error('syscall not in the table');
  const mem = Buffer.alloc(64);
  mem.writeUInt32LE(d.nr >>> 0, 0);
  mem.writeUInt32LE((d.arch ?? AUDIT_ARCH.x86_64) >>> 0, 4);
  (d.args ?? []).forEach((a, i) => mem.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + 8 * i));
  let A = 0;
  let pc = 0;
  for (let steps = 0; steps < 100_000; steps++) {
    const ins = prog[pc];
    if (!ins) throw new Error(`fell off the program at ${pc}`);
    const cls = ins.code & 0x07;
    if (cls === BPF.LD) {
      if (ins.code !== (BPF.LD | BPF.W | BPF.ABS)) throw new Error(`unsupported load 0x${ins.code.toString(16)}`);
      if (ins.k % 4 || ins.k > 60) throw new Error(`misaligned or out-of-range load ${ins.k}`);
      A = mem.readUInt32LE(ins.k);
      pc++;
    } else if (cls === BPF.ALU) {
      if (ins.code !== (BPF.ALU | BPF.AND | BPF.K)) throw new Error(`unsupported alu 0x${ins.code.toString(16)}`);
      A = (A & ins.k) >>> 0;
      pc++;
    } else if (cls === BPF.JMP) {
      const op = ins.code & 0xf0;
      if (op === BPF.JA) {
        pc += 1 + ins.k;
        continue;
      }
      const c = op === BPF.JEQ ? A === ins.k : op === BPF.JGT ? A > ins.k : op === BPF.JGE ? A >= ins.k : op === BPF.JSET ? (A & ins.k) !== 0 : (() => { throw new Error('bad jump'); })();
      pc += 1 + (c ? ins.jt : ins.jf);
    } else if (cls === BPF.RET) {
      return ins.k >>> 0;
    } else {
      throw new Error(`unsupported class ${cls}`);
    }
  }
  throw new Error('no return');
}

const errno = (e: number): number => (RET.ERRNO | e) >>> 0;
const EPERM = errno(1);
const ENOSYS = errno(38);
const X = SYSCALL_TABLES.x86_64 as Record<string, number>;
const A64 = SYSCALL_TABLES.aarch64 as Record<string, number>;

describe('syscall tables', () => {
  it('hold the kernel\'s numbers for a sample of syscalls on each architecture', () => {
    expect([X.read, X.write, X.open, X.execve, X.mount, X.pivot_root, X.ptrace, X.openat, X.unshare, X.setns, X.seccomp, X.bpf, X.clone3, X.close_range])
      .toEqual([0, 1, 2, 59, 165, 155, 101, 257, 272, 308, 317, 321, 435, 436]);
    expect([A64.io_setup, A64.openat, A64.mount, A64.pivot_root, A64.read, A64.write, A64.execve, A64.clone, A64.unshare, A64.setns, A64.seccomp, A64.bpf, A64.clone3])
      .toEqual([0, 56, 40, 41, 63, 64, 221, 220, 97, 268, 277, 280, 435]);
    // aarch64 has no legacy open/mkdir/fork: only the *at variants.
    expect(A64.open).toBeUndefined();
    expect(A64.mkdir).toBeUndefined();
    expect(A64.mkdirat).toBe(34);
    expect([SYSCALL_TABLES.x86.execve, SYSCALL_TABLES.x86.mount, SYSCALL_TABLES.x86.socketcall]).toEqual([11, 21, 102]);
    expect(SYSCALL_TABLES.x32.read).toBe(X32_SYSCALL_BIT + 0);
    expect(SYSCALL_TABLES.x32.rt_sigaction).toBe(X32_SYSCALL_BIT + 512);
    // The unified range added after the headers' kernel.
    expect([X.fchmodat2, A64.fchmodat2, X.mseal]).toEqual([452, 452, 462]);
  });

  it('agree with the numbers src/linux uses for its raw syscalls', () => {
    for (const [name, n] of Object.entries(SYS)) {
      if (X[name] !== undefined) expect(X[name], name).toBe(n.x64);
      if (A64[name] !== undefined) expect(A64[name], name).toBe(n.arm64);
    }
  });
});

describe('BPF assembler', () => {
  it('encodes struct sock_filter as 8 bytes per instruction and decodes it back', () => {
    const a = new Assembler();
    a.ldAbs(4).jump('jeq', 0xc000003e, 'next', 'x').ret(RET.ALLOW).bind('x').ret(RET.KILL_PROCESS);
    const prog = a.assemble();
    const buf = encode(prog);
    expect(buf.length).toBe(prog.length * 8);
    // jeq: code 0x0015 (LE), jt 0, jf 1, k 0xc000003e (LE)
    expect(buf.subarray(8, 16).toString('hex')).toBe('150000013e0000c0');
    expect(decode(buf)).toEqual(prog);
    expect(prog[1]).toEqual({ code: 0x15, jt: 0, jf: 1, k: 0xc000003e });
  });

  it('reaches targets more than 255 instructions away through ja trampolines', () => {
    const a = new Assembler();
    a.ldAbs(0);
    a.jump('jeq', 7, 'far7', 'next');
    a.jump('jge', 1000, 'next', 'far8'); // a far false branch
    for (let i = 0; i < 600; i++) a.jump('jeq', 1000 + i, 'mid', 'next');
    a.ret(RET.ALLOW);
    a.bind('mid').ret(errno(5));
    a.bind('far8').ret(errno(8));
    a.bind('far7').ret(errno(7));
    const prog = a.assemble();
    for (const ins of prog) expect(ins.jt <= 255 && ins.jf <= 255).toBe(true);
    expect(runBpf(prog, { nr: 7 })).toBe(errno(7));
    expect(runBpf(prog, { nr: 9 })).toBe(errno(8));
    expect(runBpf(prog, { nr: 2000 })).toBe(RET.ALLOW);
    expect(runBpf(prog, { nr: 1000 })).toBe(errno(5));
    expect(runBpf(prog, { nr: 1599 })).toBe(errno(5));
  });

  it('refuses unbound labels', () => {
    const a = new Assembler();
    a.ldAbs(0).jump('jeq', 1, 'nowhere', 'next').ret(0);
    expect(() => a.assemble()).toThrow(/never bound/);
  });
});

const base = (extra: Partial<LinuxSeccomp> = {}): LinuxSeccomp => ({ defaultAction: 'SCMP_ACT_ALLOW', ...extra });

describe('OCI linux.seccomp -> BPF', () => {
  it('applies per-syscall actions, errnoRet and the default action', () => {
    const f = compileSeccomp(base({
      defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 13,
      syscalls: [
        { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
        { names: ['mkdir'], action: 'SCMP_ACT_ERRNO' },
        { names: ['rmdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 39 },
        { names: ['kill'], action: 'SCMP_ACT_KILL' },
        { names: ['tkill'], action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['getpid'], action: 'SCMP_ACT_TRAP' },
        { names: ['getppid'], action: 'SCMP_ACT_LOG' },
        { names: ['no_such_syscall'], action: 'SCMP_ACT_ALLOW' },
      ],
    }), 'x86_64');
    const run = (nr: number | undefined): number => runBpf(f.insns, { nr });
    expect(run(X.read)).toBe(RET.ALLOW);
    expect(run(X.write)).toBe(RET.ALLOW);
    expect(run(X.mkdir)).toBe(EPERM);
    expect(run(X.rmdir)).toBe(errno(39));
    expect(run(X.kill)).toBe(RET.KILL_THREAD);
    expect(run(X.tkill)).toBe(RET.KILL_PROCESS);
    expect(run(X.getpid)).toBe(RET.TRAP);
    expect(run(X.getppid)).toBe(RET.LOG);
    expect(run(X.open)).toBe(errno(13));
    expect(f.unknown).toEqual(['no_such_syscall']);
  });

  it('kills a syscall from an architecture the profile does not list', () => {
    const f = compileSeccomp(base({ syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] }), 'x86_64');
    expect(runBpf(f.insns, { nr: X.mkdir })).toBe(EPERM);
    expect(runBpf(f.insns, { nr: X.mkdir, arch: AUDIT_ARCH.aarch64 })).toBe(RET.KILL_PROCESS);
    expect(runBpf(f.insns, { nr: 39, arch: AUDIT_ARCH.x86 })).toBe(RET.KILL_PROCESS);
  });

  it('x86_64: x32 syscalls (with __X32_SYSCALL_BIT) cannot slip past rules written for 64-bit numbers', () => {
    const deny = { syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] };
    const native = compileSeccomp(base(deny), 'x86_64');
    // Same AUDIT_ARCH as x86_64, number | 0x40000000: not listed -> killed, not allowed.
    expect(runBpf(native.insns, { nr: X32_SYSCALL_BIT | X.mkdir! })).toBe(RET.KILL_PROCESS);
    expect(runBpf(native.insns, { nr: X32_SYSCALL_BIT | X.read! })).toBe(RET.KILL_PROCESS);
    const withX32 = compileSeccomp(base({ ...deny, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }), 'x86_64');
    expect(runBpf(withX32.insns, { nr: SYSCALL_TABLES.x32.mkdir! })).toBe(EPERM);
    expect(runBpf(withX32.insns, { nr: SYSCALL_TABLES.x32.read! })).toBe(RET.ALLOW);
    expect(runBpf(withX32.insns, { nr: SYSCALL_TABLES.x86.mkdir!, arch: AUDIT_ARCH.x86 })).toBe(EPERM);
    expect(runBpf(withX32.insns, { nr: SYSCALL_TABLES.x86.read!, arch: AUDIT_ARCH.x86 })).toBe(RET.ALLOW);
  });

  it('aarch64 uses its own numbers', () => {
    const f = compileSeccomp(base({ syscalls: [{ names: ['mkdirat', 'mount'], action: 'SCMP_ACT_ERRNO' }] }), 'aarch64');
    expect(runBpf(f.insns, { nr: A64.mkdirat!, arch: AUDIT_ARCH.aarch64 })).toBe(EPERM);
    expect(runBpf(f.insns, { nr: A64.mount!, arch: AUDIT_ARCH.aarch64 })).toBe(EPERM);
    expect(runBpf(f.insns, { nr: X.mount!, arch: AUDIT_ARCH.aarch64 })).toBe(RET.ALLOW); // 165 is getrusage on arm64
    expect(runBpf(f.insns, { nr: A64.mount!, arch: AUDIT_ARCH.x86_64 })).toBe(RET.KILL_PROCESS);
  });

  it('returns ENOSYS for syscalls newer than any the profile lists, so libc falls back', () => {
    const f = compileSeccomp(base({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] }), 'x86_64');
    expect(runBpf(f.insns, { nr: 1000 })).toBe(ENOSYS);
    expect(runBpf(f.insns, { nr: X.write })).toBe(ENOSYS); // 1 > read's 0
    expect(runBpf(f.insns, { nr: X.read })).toBe(RET.ALLOW);
    // An allowlist written before clone3 (an older profile, runtime-tools' generator):
    // clone3 must get ENOSYS, or glibc's posix_spawn and pthread_create take the EPERM
    // as final instead of falling back to clone, and nothing can start.
    const old = compileSeccomp(base({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['clone', 'execve', 'mount', 'pkey_free'], action: 'SCMP_ACT_ALLOW' }] }), 'x86_64');
    expect(runBpf(old.insns, { nr: X.clone3! })).toBe(ENOSYS);
    expect(runBpf(old.insns, { nr: X.pkey_free! })).toBe(RET.ALLOW);
    expect(runBpf(old.insns, { nr: X.umount2! })).toBe(EPERM); // older than pkey_free, not listed: a real refusal
    // A profile that lists syscalls newer than clone3 (landlock, as runtime-tools'
    // does) but not clone3 itself still gives it ENOSYS; one that lists it is obeyed.
    const landlock = compileSeccomp(base({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['clone', 'landlock_create_ruleset'], action: 'SCMP_ACT_ALLOW' }] }), 'x86_64');
    expect(runBpf(landlock.insns, { nr: X.clone3! })).toBe(ENOSYS);
    // close_range likewise is allowed: the spawned child closes its inherited fds with it
    expect(runBpf(landlock.insns, { nr: X.close_range! })).toBe(RET.ALLOW);
    expect(runBpf(landlock.insns, { nr: X.openat2! })).toBe(EPERM);
    const listed = compileSeccomp(base({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['clone'], action: 'SCMP_ACT_ALLOW' }, { names: ['clone3', 'close_range'], action: 'SCMP_ACT_ERRNO' }] }), 'x86_64');
    expect(runBpf(listed.insns, { nr: X.clone3! })).toBe(EPERM);
    expect(runBpf(listed.insns, { nr: X.close_range! })).toBe(EPERM);
    // the same line per ABI, in that ABI's numbers
    const i386 = compileSeccomp(base({ defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'], syscalls: [{ names: ['clone'], action: 'SCMP_ACT_ALLOW' }] }), 'x86_64');
    expect(runBpf(i386.insns, { nr: SYSCALL_TABLES.x86.clone! + 1, arch: AUDIT_ARCH.x86 })).toBe(ENOSYS);
    expect(runBpf(i386.insns, { nr: SYSCALL_TABLES.x86.clone! - 1, arch: AUDIT_ARCH.x86 })).toBe(EPERM);
  });

  it('first match wins, also for a rule with the default\'s action ahead of another on the same syscall', () => {
    const f = compileSeccomp(base({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }, { names: ['mkdir', 'read'], action: 'SCMP_ACT_ALLOW' }] }), 'x86_64');
    expect(runBpf(f.insns, { nr: X.mkdir! })).toBe(EPERM);
    expect(runBpf(f.insns, { nr: X.read! })).toBe(RET.ALLOW);
    const after = compileSeccomp(base({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ALLOW' }, { names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] }), 'x86_64');
    expect(runBpf(after.insns, { nr: X.mkdir! })).toBe(RET.ALLOW);
  });

  it('no ENOSYS line where the default lets new syscalls through, or already says ENOSYS', () => {
    for (const d of [{ defaultAction: 'SCMP_ACT_ALLOW' }, { defaultAction: 'SCMP_ACT_LOG' }, { defaultAction: 'SCMP_ACT_TRACE' }, { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 38 }]) {
      const f = compileSeccomp(base({ ...d, syscalls: [{ names: ['read'], action: 'SCMP_ACT_KILL' }] }), 'x86_64');
      expect(runBpf(f.insns, { nr: 1000 }), JSON.stringify(d)).toBe(actionValue(d.defaultAction, d.defaultErrnoRet, 'defaultAction'));
    }
  });

  // Every op on values that differ in the high half, the low half, both or neither:
  // a comparison that looks only at one 32-bit half fails here.
  const samples = [0n, 1n, 2n, 0xffffffffn, 0x100000000n, 0x100000001n, 0x1ffffffffn, 0x200000000n, 0xfffffffffffffffen, 0xffffffffffffffffn, 0x80000000n, 0x7fffffff00000000n];
  const ops: Array<[SeccompArg['op'], (a: bigint, v: bigint) => boolean]> = [
    ['SCMP_CMP_EQ', (a, v) => a === v], ['SCMP_CMP_NE', (a, v) => a !== v], ['SCMP_CMP_LT', (a, v) => a < v],
    ['SCMP_CMP_LE', (a, v) => a <= v], ['SCMP_CMP_GT', (a, v) => a > v], ['SCMP_CMP_GE', (a, v) => a >= v],
  ];
  for (const [op, truth] of ops) {
    it(`${op} compares the full 64-bit argument`, () => {
      for (const v of samples) {
        const f = compileSeccomp(base({ syscalls: [{ names: ['ioctl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: v, op }] }] }), 'x86_64');
        for (const arg of samples) {
          const got = runBpf(f.insns, { nr: X.ioctl!, args: [0, arg] });
          expect(got, `${op}: arg ${arg.toString(16)} vs ${v.toString(16)}`).toBe(truth(arg, v) ? EPERM : RET.ALLOW);
        }
      }
    });
  }

  it('SCMP_CMP_MASKED_EQ: (arg & value) == valueTwo, on both halves', () => {
    const f = compileSeccomp(base({ syscalls: [{ names: ['clone'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0xff000000ff00n, valueTwo: 0x120000003400n, op: 'SCMP_CMP_MASKED_EQ' }] }] }), 'x86_64');
    const run = (a: bigint): number => runBpf(f.insns, { nr: X.clone!, args: [a] });
    expect(run(0x120000003400n)).toBe(EPERM);
    expect(run(0x12ab000034cdn)).toBe(EPERM);
    expect(run(0x130000003400n)).toBe(RET.ALLOW);
    expect(run(0x120000003500n)).toBe(RET.ALLOW);
  });

  it('conditions on different arguments must all hold; on the same argument any one may', () => {
    const and = compileSeccomp(base({ syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 1, value: 9, op: 'SCMP_CMP_EQ' }] }] }), 'x86_64');
    expect(runBpf(and.insns, { nr: X.kill!, args: [1, 9] })).toBe(EPERM);
    expect(runBpf(and.insns, { nr: X.kill!, args: [1, 15] })).toBe(RET.ALLOW);
    expect(runBpf(and.insns, { nr: X.kill!, args: [2, 9] })).toBe(RET.ALLOW);
    const or = compileSeccomp(base({ syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 9, op: 'SCMP_CMP_EQ' }, { index: 1, value: 15, op: 'SCMP_CMP_EQ' }] }] }), 'x86_64');
    expect(runBpf(or.insns, { nr: X.kill!, args: [1, 9] })).toBe(EPERM);
    expect(runBpf(or.insns, { nr: X.kill!, args: [1, 15] })).toBe(EPERM);
    expect(runBpf(or.insns, { nr: X.kill!, args: [1, 2] })).toBe(RET.ALLOW);
    // After an argument rule fails, later rules still see the syscall number.
    const later = compileSeccomp(base({ syscalls: [
      { names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 5, args: [{ index: 1, value: 9, op: 'SCMP_CMP_EQ' }] },
      { names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 6 },
      { names: ['tkill'], action: 'SCMP_ACT_ERRNO', errnoRet: 7 },
    ] }), 'x86_64');
    expect(runBpf(later.insns, { nr: X.kill!, args: [1, 9] })).toBe(errno(5));
    expect(runBpf(later.insns, { nr: X.kill!, args: [1, 2] })).toBe(errno(6));
    expect(runBpf(later.insns, { nr: X.tkill!, args: [1, 9] })).toBe(errno(7));
  });

  it('rejects what it cannot honour, naming the field', () => {
    const code = (s: LinuxSeccomp): string => {
      try {
        compileSeccomp(s, 'x86_64');
        return 'ok';
      } catch (e) {
        return `${(e as TsrunError).code}: ${(e as Error).message}`;
      }
    };
    expect(code(base({ defaultAction: 'SCMP_ACT_MAYBE' }))).toMatch(/^SPEC_INVALID: .*defaultAction.*SCMP_ACT_MAYBE/);
    expect(code(base({ syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', errnoRet: 70000 }] }))).toMatch(/syscalls\[0\]\.action/);
    expect(code(base({ syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }] }] }))).toMatch(/args\[0\].*index/);
    expect(code(base({ architectures: ['SCMP_ARCH_Z80'] }))).toMatch(/architectures/);
    expect(code(base({ syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY' }] }))).toMatch(/NOTIFY/);
  });

  it('never passes TSYNC (it would filter every tsrun thread); LOG and SPEC_ALLOW go through', () => {
    expect(compileSeccomp(base({ flags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG'] }), 'x86_64').flags).toBe(2);
    expect(compileSeccomp(base({ flags: ['SECCOMP_FILTER_FLAG_SPEC_ALLOW'] }), 'x86_64').flags).toBe(4);
  });
});

describe('default profile', () => {
  const DEFAULT_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];
  const build = (caps = DEFAULT_CAPS, kernelRelease = '6.18.0', arch: 'x86_64' | 'aarch64' = 'x86_64') => {
    const f = compileSeccomp(defaultSeccompProfile({ capabilities: caps, kernelRelease, arch }), arch);
    const t = SYSCALL_TABLES[arch];
    const archV = AUDIT_ARCH[arch];
    return (name: string, args: Array<number | bigint> = []): number => {
      const nr = t[name];
      if (nr === undefined) throw new Error(`${name} not in ${arch}`);
      return runBpf(f.insns, { nr, arch: archV, args });
    };
  };

  it('fits in the kernel\'s 4096-instruction limit', () => {
    const f = compileSeccomp(defaultSeccompProfile({ capabilities: DEFAULT_CAPS, kernelRelease: '6.18.0', arch: 'x86_64' }), 'x86_64');
    expect(f.insns.length).toBeLessThan(4096);
    expect(f.unknown).toEqual([]);
  });

  it('denies with EPERM what lets a container reach the host kernel', () => {
    const sys = build();
    for (const n of ['mount', 'umount2', 'pivot_root', 'setns', 'keyctl', 'add_key', 'request_key', 'kexec_load', 'kexec_file_load',
      'init_module', 'finit_module', 'delete_module', 'bpf', 'perf_event_open', 'userfaultfd', 'open_by_handle_at', 'reboot',
      'swapon', 'swapoff', 'clock_settime', 'settimeofday', 'acct', 'io_uring_setup', 'fsopen', 'move_mount', 'open_tree', 'quotactl', 'modify_ldt', 'iopl']) {
      expect(sys(n), n).toBe(EPERM);
    }
  });

  it('allows what the setup thread, the spawned child and normal programs need', () => {
    const sys = build();
    for (const n of ['read', 'write', 'openat', 'close', 'close_range', 'dup2', 'dup3', 'chdir', 'fchdir', 'execve', 'execveat', 'futex', 'mmap', 'munmap',
      'mprotect', 'madvise', 'brk', 'rt_sigaction', 'rt_sigprocmask', 'exit', 'exit_group', 'wait4', 'waitid', 'capset', 'capget', 'setresuid', 'setresgid',
      'setgroups', 'prctl', 'sethostname', 'chroot', 'getdents64', 'newfstatat', 'statx', 'mkdir', 'socket', 'kill', 'seccomp', 'ptrace', 'pidfd_open', 'rseq', 'set_robust_list', 'prlimit64', 'sched_getaffinity']) {
      expect(sys(n), n).toBe(RET.ALLOW);
    }
  });

  it('clone: threads and processes yes, new namespaces no; clone3 gets ENOSYS so glibc falls back to clone', () => {
    const sys = build();
    const CLONE_THREAD_FLAGS = 0x3d0f00; // what pthread_create passes
    const VFORK = 0x4111; // CLONE_VM|CLONE_VFORK|SIGCHLD: posix_spawn
    expect(sys('clone', [CLONE_THREAD_FLAGS])).toBe(RET.ALLOW);
    expect(sys('clone', [VFORK])).toBe(RET.ALLOW);
    for (const ns of [0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000]) expect(sys('clone', [VFORK | ns]), ns.toString(16)).toBe(EPERM);
    expect(sys('clone3')).toBe(ENOSYS);
    expect(sys('unshare', [0x200 /* CLONE_FS */])).toBe(RET.ALLOW);
    expect(sys('unshare', [0x10000000 /* CLONE_NEWUSER */])).toBe(EPERM);
    expect(sys('unshare', [0x80 /* CLONE_NEWTIME */])).toBe(EPERM);
  });

  it('personality: only harmless personas; socket: no AF_VSOCK', () => {
    const sys = build();
    expect(sys('personality', [0])).toBe(RET.ALLOW);
    expect(sys('personality', [0xffffffff])).toBe(RET.ALLOW);
    expect(sys('personality', [0x0040000 /* ADDR_NO_RANDOMIZE */])).toBe(EPERM);
    expect(sys('personality', [0x0400000 /* READ_IMPLIES_EXEC */])).toBe(EPERM);
    expect(sys('socket', [2 /* AF_INET */])).toBe(RET.ALLOW);
    expect(sys('socket', [40 /* AF_VSOCK */])).toBe(EPERM);
  });

  it('capabilities lift the syscalls they exist for, as Docker does', () => {
    const admin = build([...DEFAULT_CAPS, 'CAP_SYS_ADMIN']);
    expect(admin('mount')).toBe(RET.ALLOW);
    expect(admin('unshare', [0x10000000])).toBe(RET.ALLOW);
    expect(admin('clone', [0x4111 | 0x20000000])).toBe(RET.ALLOW);
    expect(admin('clone3')).toBe(RET.ALLOW);
    expect(admin('bpf')).toBe(RET.ALLOW);
    expect(admin('keyctl')).toBe(EPERM); // not namespaced: no capability lifts it
    expect(build([...DEFAULT_CAPS, 'CAP_SYS_MODULE'])('finit_module')).toBe(RET.ALLOW);
    expect(build([...DEFAULT_CAPS, 'CAP_SYS_TIME'])('clock_settime')).toBe(RET.ALLOW);
    expect(build([...DEFAULT_CAPS, 'CAP_SYS_BOOT'])('reboot')).toBe(RET.ALLOW);
    expect(build(DEFAULT_CAPS.filter((c) => c !== 'CAP_SYS_CHROOT'))('chroot')).toBe(EPERM);
  });

  it('ptrace only on kernels that re-check seccomp after a tracer (4.8+), or with CAP_SYS_PTRACE', () => {
    expect(kernelAllowsPtrace('4.7.10')).toBe(false);
    expect(kernelAllowsPtrace('4.8.0')).toBe(true);
    expect(kernelAllowsPtrace('6.18.44-fc-v669')).toBe(true);
    expect(build(DEFAULT_CAPS, '4.4.0')('ptrace')).toBe(EPERM);
    expect(build(DEFAULT_CAPS, '4.4.0')('process_vm_readv')).toBe(EPERM);
    expect(build([...DEFAULT_CAPS, 'CAP_SYS_PTRACE'], '4.4.0')('ptrace')).toBe(RET.ALLOW);
    expect(build(DEFAULT_CAPS, '5.10.0')('ptrace')).toBe(RET.ALLOW);
  });

  it('covers i386 and x32 entry points on x86_64, and aarch64 with its own numbers', () => {
    const f = compileSeccomp(defaultSeccompProfile({ capabilities: DEFAULT_CAPS, kernelRelease: '6.18', arch: 'x86_64' }), 'x86_64');
    expect(runBpf(f.insns, { nr: SYSCALL_TABLES.x86.mount!, arch: AUDIT_ARCH.x86 })).toBe(EPERM);
    expect(runBpf(f.insns, { nr: SYSCALL_TABLES.x86.read!, arch: AUDIT_ARCH.x86 })).toBe(RET.ALLOW);
    expect(runBpf(f.insns, { nr: SYSCALL_TABLES.x32.mount! })).toBe(EPERM);
    expect(runBpf(f.insns, { nr: SYSCALL_TABLES.x32.read! })).toBe(RET.ALLOW);
    const arm = build(DEFAULT_CAPS, '6.18', 'aarch64');
    expect(arm('mount')).toBe(EPERM);
    expect(arm('openat')).toBe(RET.ALLOW);
    expect(arm('clone', [0x10000000 | 0x11])).toBe(EPERM);
  });
});

describe('Docker profile -> OCI', () => {
  const ctx = { capabilities: ['CAP_CHOWN'], kernelRelease: '6.1.0', arch: 'x86_64' as const };

  it('keeps entries by includes/excludes (caps, arches, minKernel) and maps archMap', () => {
    const oci = dockerProfileToOci({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      archMap: [
        { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
        { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
      ],
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_ALLOW' },
        { name: 'write', action: 'SCMP_ACT_ALLOW', args: null },
        { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
        { names: ['chown'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_CHOWN'] } },
        { names: ['ptrace'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '4.8' } },
        { names: ['newer'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '6.2' } },
        { names: ['arm_only'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['arm', 'arm64'] } },
        { names: ['amd_only'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64'] } },
        { names: ['not_chown'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_CHOWN'] } },
      ],
    }, ctx);
    expect(oci.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(oci.syscalls!.map((s) => s.names[0])).toEqual(['read', 'write', 'chown', 'ptrace', 'amd_only']);
    expect(oci.defaultErrnoRet).toBe(1);
  });

  it('reports a profile that is not one', () => {
    expect(() => dockerProfileToOci([], ctx, 'p.json')).toThrow(/p.json: not a JSON object/);
    expect(() => dockerProfileToOci({ syscalls: [] }, ctx, 'p.json')).toThrow(/defaultAction/);
  });
});

describe('--security-opt -> spec', () => {
  const flags = (over: Partial<RunFlags> = {}): RunFlags => ({
    env: [], envFile: [], interactive: false, tty: false, readOnly: false, volume: [], tmpfs: [],
    capAdd: [], capDrop: [], ulimit: [], privileged: false, ...over,
  });
  const ID = '0123456789abcdef0123456789abcdef';
  const seccompOf = (over: Partial<RunFlags>): LinuxSeccomp | undefined => specFromFlags(flags(over), ['sh'], { id: ID }).linux!.seccomp as LinuxSeccomp | undefined;

  it('parses docker\'s forms and refuses AppArmor/SELinux and unknown options', () => {
    expect(parseSecurityOpts([])).toEqual({ seccomp: 'default', noNewPrivileges: false });
    expect(parseSecurityOpts(['seccomp=unconfined', 'no-new-privileges'])).toEqual({ seccomp: 'unconfined', noNewPrivileges: true });
    expect(parseSecurityOpts(['seccomp:/p.json', 'no-new-privileges:true'])).toEqual({ seccomp: { file: '/p.json' }, noNewPrivileges: true });
    expect(parseSecurityOpts(['no-new-privileges=false']).noNewPrivileges).toBe(false);
    for (const bad of ['apparmor=unconfined', 'label=disable', 'seccomp', 'bogus=1']) expect(() => parseSecurityOpts([bad]), bad).toThrow(TsrunError);
  });

  it('tsrun run gets the default profile for its capabilities; --privileged and unconfined get none', () => {
    const dflt = seccompOf({});
    expect(dflt?.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(dflt!.syscalls![0]!.names).not.toContain('mount');
    expect(seccompOf({ capAdd: ['SYS_ADMIN'] })!.syscalls![0]!.names).toContain('mount');
    expect(seccompOf({ privileged: true })).toBeUndefined();
    expect(seccompOf({ securityOpt: ['seccomp=unconfined'] })).toBeUndefined();
    expect(specFromFlags(flags({ securityOpt: ['no-new-privileges'] }), ['sh'], { id: ID }).process!.noNewPrivileges).toBe(true);
  });

  it('a profile file is read and converted; --privileged keeps an explicitly named profile, as Docker does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsrun-unit-seccomp-'));
    try {
      const file = join(dir, 'p.json');
      writeFileSync(file, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }, { names: ['x'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } }] }));
      expect(seccompOf({ securityOpt: [`seccomp=${file}`] })).toEqual({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] });
      expect(seccompOf({ privileged: true, securityOpt: [`seccomp=${file}`] })!.syscalls!.map((s) => s.names[0])).toEqual(['mkdir', 'x']);
      writeFileSync(file, '{ not json');
      expect(() => seccompOf({ securityOpt: [`seccomp=${file}`] })).toThrow(/not valid JSON/);
      expect(() => seccompOf({ securityOpt: [`seccomp=${join(dir, 'missing.json')}`] })).toThrow(/missing.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
