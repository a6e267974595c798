// OCI `linux.seccomp` -> a classic BPF program for seccomp(SECCOMP_SET_MODE_FILTER).
// https://github.com/opencontainers/runtime-spec/blob/main/config-linux.md#seccomp
//
// Program shape, per listed architecture:
//   load arch; unknown arch -> bad-arch action (kill the process: a syscall made
//   through another ABI would be looked up in the wrong number table)
//   load nr; on x86_64, nr with __X32_SYSCALL_BIT -> the x32 block, or the bad-arch
//   action when x32 is not listed (the same kernel entry serves both ABIs, and a
//   filter that only knows x86_64 numbers would let x32 calls slip through)
//   rules in profile order: first match wins
//   nr above the newest syscall the profile lists -> ENOSYS, so that libc falls back
//   (clone3 -> clone, say) instead of taking the default's EPERM as a real refusal:
//   a profile written before a syscall existed cannot have meant to refuse it. Only
//   for a refusing default (as runc does): an ALLOW, LOG or TRACE default already
//   lets new syscalls through, and a default of ENOSYS needs no stub. Under a refusing
//   default, clone3 and close_range get ENOSYS and ALLOW when the profile does not list
//   them: tsrun's own posix_spawn of the container process needs both (rulesFor)
//   default action
import { TsrunError } from '../../errors.js';
import { AUDIT_ARCH, Assembler, DATA, RET, RET_DATA, X32_SYSCALL_BIT, encode, type Insn, type Label } from './bpf.js';
import { SYSCALL_TABLES } from './tables.js';

export type SeccompArch = keyof typeof SYSCALL_TABLES;

export interface SeccompArg {
  index: number;
  value: number | bigint;
  valueTwo?: number | bigint;
  op: 'SCMP_CMP_NE' | 'SCMP_CMP_LT' | 'SCMP_CMP_LE' | 'SCMP_CMP_EQ' | 'SCMP_CMP_GE' | 'SCMP_CMP_GT' | 'SCMP_CMP_MASKED_EQ';
}

export interface SeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface LinuxSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  syscalls?: SeccompSyscall[];
}

export interface CompiledFilter {
  program: Buffer;
  insns: Insn[];
  /** SECCOMP_FILTER_FLAG_* for seccomp(2) */
  flags: number;
  /** names the profile lists that no table knows (skipped, as runc and libseccomp do) */
  unknown: string[];
}

const EPERM = 1;
const ENOSYS = 38;
const ENOSYS_RET = (RET.ERRNO | ENOSYS) >>> 0;

const OCI_ARCH: Record<string, SeccompArch> = {
  SCMP_ARCH_X86_64: 'x86_64', SCMP_ARCH_X86: 'x86', SCMP_ARCH_X32: 'x32', SCMP_ARCH_AARCH64: 'aarch64',
};
/** 32-bit ARM and the rest: accepted in a profile (Docker's lists them) but nothing to filter on these hosts. */
const OTHER_ARCHES = new Set([
  'SCMP_ARCH_ARM', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC', 'SCMP_ARCH_PARISC64', 'SCMP_ARCH_RISCV64', 'SCMP_ARCH_LOONGARCH64', 'SCMP_ARCH_M68K', 'SCMP_ARCH_SH', 'SCMP_ARCH_SHEB',
]);

/** The seccomp architecture of the machine tsrun runs on. */
export function nativeArch(nodeArch: string = process.arch): SeccompArch {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'arm64') return 'aarch64';
  throw new TsrunError('KERNEL_FEATURE', `seccomp filters are not supported on ${nodeArch}`, { hint: 'tsrun supports x86_64 and aarch64; use --security-opt seccomp=unconfined' });
}

function bad(field: string, message: string): TsrunError {
  return new TsrunError('SPEC_INVALID', `invalid OCI spec: linux.seccomp.${field}: ${message}`);
}

/** An OCI action name (+ errnoRet) -> SECCOMP_RET_* value. */
export function actionValue(action: string, errnoRet: number | undefined, field: string): number {
  const data = (n: number | undefined, dflt: number): number => {
    const v = n ?? dflt;
    if (!Number.isInteger(v) || v < 0 || v > RET_DATA) throw bad(field, `errnoRet ${v} is not in 0..65535`);
    return v;
  };
  switch (action) {
    case 'SCMP_ACT_ALLOW': return RET.ALLOW;
    case 'SCMP_ACT_ERRNO': return (RET.ERRNO | data(errnoRet, EPERM)) >>> 0;
    // runc gives TRACE the same EPERM default: with no tracer attached, the kernel
    // fails the syscall with ENOSYS anyway.
    case 'SCMP_ACT_TRACE': return (RET.TRACE | data(errnoRet, EPERM)) >>> 0;
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD': return RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS': return RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP': return RET.TRAP;
    case 'SCMP_ACT_LOG': return RET.LOG;
    case 'SCMP_ACT_NOTIFY':
      throw new TsrunError('SPEC_INVALID', `linux.seccomp.${field}: SCMP_ACT_NOTIFY is not supported by tsrun`, { hint: 'use SCMP_ACT_ERRNO or SCMP_ACT_LOG instead' });
    default:
      throw bad(field, `unknown action "${action}"`);
  }
}

const FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};

interface Cond {
  index: number;
  op: SeccompArg['op'];
  value: bigint;
  valueTwo: bigint;
}

interface Rule {
  nr: number;
  action: number;
  /** all must hold */
  conds: Cond[];
}

const U64 = (1n << 64n) - 1n;
function u64(v: number | bigint | undefined, field: string): bigint {
  if (v === undefined) return 0n;
  const b = typeof v === 'bigint' ? v : Number.isInteger(v) ? BigInt(v) : NaN;
  if (typeof b !== 'bigint') throw bad(field, `${String(v)} is not an integer`);
  // Negative values are the two's complement, as a C caller passing (long)-1 means.
  return b < 0n ? (b & U64) : b > U64 ? (() => { throw bad(field, `${v} does not fit in 64 bits`); })() : b;
}

/**
 * Splits a syscall entry's args into rules. Conditions on different arguments must all
 * hold (one rule). Several conditions on the *same* argument become separate rules,
 * any of which may match: libseccomp cannot express both on one argument, and runc
 * turns them into separate rules the same way (Docker's profile relies on this).
 */
function ruleConds(args: SeccompArg[] | undefined, field: string): Cond[][] {
  const conds: Cond[] = (args ?? []).map((a, i) => {
    const f = `${field}.args[${i}]`;
    if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) throw bad(f, `index ${a.index} is not 0..5`);
    if (!['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'].includes(a.op)) throw bad(f, `unknown op "${a.op}"`);
    return { index: a.index, op: a.op, value: u64(a.value, f + '.value'), valueTwo: u64(a.valueTwo, f + '.valueTwo') };
  });
  const seen = new Set<number>();
  const dup = conds.some((c) => (seen.has(c.index) ? true : (seen.add(c.index), false)));
  return dup ? conds.map((c) => [c]) : [conds];
}

/**
 * Emits the test of one 64-bit argument as two 32-bit halves (classic BPF has only
 * 32-bit loads). Falls through when the condition holds, jumps to `fail` when not.
 */
function emitCond(a: Assembler, c: Cond, fail: Label): void {
  const off = DATA.args + 8 * c.index;
  const hi = (v: bigint): number => Number((v >> 32n) & 0xffffffffn);
  const lo = (v: bigint): number => Number(v & 0xffffffffn);
  const ok = a.label('ok');
  const v = c.value;
  switch (c.op) {
    case 'SCMP_CMP_EQ':
      a.ldAbs(off + 4).jump('jeq', hi(v), 'next', fail);
      a.ldAbs(off).jump('jeq', lo(v), ok, fail);
      break;
    case 'SCMP_CMP_NE':
      a.ldAbs(off + 4).jump('jeq', hi(v), 'next', ok);
      a.ldAbs(off).jump('jeq', lo(v), fail, ok);
      break;
    case 'SCMP_CMP_GT':
      a.ldAbs(off + 4).jump('jgt', hi(v), ok, 'next').jump('jeq', hi(v), 'next', fail);
      a.ldAbs(off).jump('jgt', lo(v), ok, fail);
      break;
    case 'SCMP_CMP_GE':
      a.ldAbs(off + 4).jump('jgt', hi(v), ok, 'next').jump('jeq', hi(v), 'next', fail);
      a.ldAbs(off).jump('jge', lo(v), ok, fail);
      break;
    case 'SCMP_CMP_LT': // not GE
      a.ldAbs(off + 4).jump('jgt', hi(v), fail, 'next').jump('jeq', hi(v), 'next', ok);
      a.ldAbs(off).jump('jge', lo(v), fail, ok);
      break;
    case 'SCMP_CMP_LE': // not GT
      a.ldAbs(off + 4).jump('jgt', hi(v), fail, 'next').jump('jeq', hi(v), 'next', ok);
      a.ldAbs(off).jump('jgt', lo(v), fail, ok);
      break;
    case 'SCMP_CMP_MASKED_EQ': {
      const m = c.value;
      const want = c.valueTwo;
      a.ldAbs(off + 4).and(hi(m)).jump('jeq', hi(want), 'next', fail);
      a.ldAbs(off).and(lo(m)).jump('jeq', lo(want), ok, fail);
      break;
    }
  }
  a.bind(ok);
}

/**
 * Emits one architecture's rules. The accumulator holds nr on entry. `newest`: the
 * highest nr the profile lists for this architecture (minus nrBase); above it, ENOSYS.
 * null: no such stub.
 */
function emitRules(a: Assembler, rules: Rule[], newest: number | null, nrBase: number): void {
  // Runs of argument-free rules with the same action share one `ret`: one instruction
  // per syscall. Chunks stay short enough for 8-bit jump offsets.
  let i = 0;
  while (i < rules.length) {
    const r = rules[i]!;
    if (r.conds.length === 0) {
      const group: number[] = [];
      while (i < rules.length && rules[i]!.conds.length === 0 && rules[i]!.action === r.action && group.length < 200) group.push(rules[i++]!.nr);
      const hit = a.label('hit');
      const after = a.label('after');
      for (const nr of group) a.jump('jeq', nr, hit, 'next');
      a.ja(after).bind(hit).ret(r.action).bind(after);
      continue;
    }
    const next = a.label('next');
    a.jump('jeq', r.nr, 'next', next);
    for (const c of r.conds) emitCond(a, c, next);
    a.ret(r.action);
    a.bind(next);
    // The argument tests replaced nr in the accumulator.
    a.ldAbs(DATA.nr);
    i++;
  }
  if (newest !== null) {
    const known = a.label('known');
    a.jump('jgt', nrBase + newest, 'next', known).ret(ENOSYS_RET).bind(known);
  }
}

export function compileSeccomp(s: LinuxSeccomp, native: SeccompArch = nativeArch()): CompiledFilter {
  if (typeof s !== 'object' || s === null) throw bad('', 'must be an object');
  if (s.listenerPath) throw new TsrunError('SPEC_INVALID', 'linux.seccomp.listenerPath: seccomp user notification is not supported by tsrun');
  const dflt = actionValue(s.defaultAction, s.defaultErrnoRet, 'defaultAction');
  let flags = 0;
  for (const f of s.flags ?? []) {
    // TSYNC would apply the filter to every thread of tsrun's Node process, not just
    // the setup thread that becomes the container.
    if (f === 'SECCOMP_FILTER_FLAG_TSYNC') continue;
    const v = FLAGS[f];
    if (v === undefined) throw bad('flags', `unknown flag "${f}"`);
    flags |= v;
  }
  // The native arch is always filtered, listed or not: a profile without
  // `architectures` means "this machine's".
  const arches = new Set<SeccompArch>([native]);
  for (const name of s.architectures ?? []) {
    const arch = OCI_ARCH[name];
    if (arch) arches.add(arch);
    else if (!OTHER_ARCHES.has(name)) throw bad('architectures', `unknown architecture "${name}"`);
  }
  // Only ABIs this CPU can actually enter matter: x86_64 (+ i386 and x32) or aarch64.
  const usable: SeccompArch[] = native === 'x86_64' ? ['x86_64', 'x86', 'x32'].filter((x) => arches.has(x as SeccompArch)) as SeccompArch[] : ['aarch64'];

  const dfltAction = (dflt & ~RET_DATA) >>> 0;
  const refusing = dfltAction !== RET.ALLOW && dfltAction !== RET.LOG && dfltAction !== RET.TRACE && dflt !== ENOSYS_RET;
  const unknown = new Set<string>();
  const rulesFor = (arch: SeccompArch): Rule[] => {
    const table = SYSCALL_TABLES[arch];
    const out: Rule[] = [];
    (s.syscalls ?? []).forEach((sc, i) => {
      const field = `syscalls[${i}]`;
      if (!Array.isArray(sc.names) || sc.names.length === 0) throw bad(field + '.names', 'must list at least one syscall');
      const action = actionValue(sc.action, sc.errnoRet, field + '.action');
      const condSets = ruleConds(sc.args, field);
      for (const name of sc.names) {
        const nr = table[name];
        if (nr === undefined) {
          if (!Object.values(SYSCALL_TABLES).some((t) => name in t)) unknown.add(name);
          continue;
        }
        for (const conds of condSets) out.push({ nr, action, conds });
      }
    });
    // clone3 passes its flags in memory seccomp cannot read, so no profile can filter it
    // by them; a refusing profile that does not list it gives it ENOSYS, and libc falls
    // back to clone, whose flags the profile does filter (Docker's profile says so
    // explicitly). tsrun needs this: its posix_spawn of the container process runs
    // under the filter, and glibc tries clone3 first.
    // close_range, unlisted, is allowed under a refusing default: the spawned child
    // closes every descriptor it inherited with it before it waits at the start gate
    // (no host fd reaches the container, CVE-2024-21626), and glibc's fallback reads
    // /proc/self/fd, which is not mounted yet. It only closes or marks the caller's own
    // descriptors, so the container gains nothing; Docker's profile allows it too.
    const implied: Array<[number | undefined, number]> = refusing ? [[table.clone3, ENOSYS_RET], [table.close_range, RET.ALLOW]] : [];
    for (const [nr, action] of implied) {
      if (nr !== undefined && !out.some((r) => r.nr === nr)) out.push({ nr, action, conds: [] });
    }
    // A rule with the default's action changes nothing when it is the only kind of
    // rule on its syscall. Where the same syscall also has rules with other actions it
    // stays: first match wins, and ahead of them it shadows them.
    const actions = new Map<number, Set<number>>();
    for (const r of out) actions.set(r.nr, (actions.get(r.nr) ?? new Set()).add(r.action));
    return out.filter((r) => r.action !== dflt || actions.get(r.nr)!.size > 1);
  };
  const newest = (arch: SeccompArch): number | null => {
    if (!refusing) return null;
    const table = SYSCALL_TABLES[arch];
    const listed = (s.syscalls ?? []).flatMap((sc) => sc.names).map((n) => table[n]).filter((n): n is number => n !== undefined);
    // Nothing listed for this ABI: no line to draw, everything gets the default.
    return listed.length ? Math.max(...listed) - (arch === 'x32' ? X32_SYSCALL_BIT : 0) : null;
  };

  const a = new Assembler();
  const badArch = a.label('badarch');
  const blocks = usable.filter((x) => x !== 'x32').map((arch) => ({ arch, label: a.label(arch) }));
  a.ldAbs(DATA.arch);
  for (const b of blocks) a.jump('jeq', AUDIT_ARCH[b.arch], b.label, 'next');
  a.ja(badArch);
  for (const b of blocks) {
    a.bind(b.label).ldAbs(DATA.nr);
    if (b.arch === 'x86_64') {
      const x32 = usable.includes('x32') ? a.label('x32') : badArch;
      a.jump('jge', X32_SYSCALL_BIT, x32, 'next');
      emitRules(a, rulesFor('x86_64'), newest('x86_64'), 0);
      a.ret(dflt);
      if (usable.includes('x32')) {
        a.bind(x32);
        emitRules(a, rulesFor('x32'), newest('x32'), X32_SYSCALL_BIT);
        a.ret(dflt);
      }
    } else {
      emitRules(a, rulesFor(b.arch), newest(b.arch), 0);
      a.ret(dflt);
    }
  }
  a.bind(badArch).ret(RET.KILL_PROCESS);
  const insns = a.assemble();
  return { program: encode(insns), insns, flags, unknown: [...unknown].sort() };
}
