// The cgroup v2 device controller is an eBPF program: cgroup v2 has no devices.allow
// file; instead a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup is asked
// for every open and mknod of a device node (Documentation/admin-guide/cgroup-v2.rst,
// "Device controller"). This is eBPF (64-bit registers, 8-byte instructions, verified by
// the kernel), not the classic BPF the seccomp filter uses, hence a small emitter of its
// own for the dozen instructions the program needs.
//
// The context is struct bpf_cgroup_dev_ctx (include/uapi/linux/bpf.h):
//   u32 access_type   device type in the low 16 bits, access bits in the high 16
//   u32 major
//   u32 minor
// The program returns 1 to allow and 0 to refuse (the caller then gets EPERM).
import type { DeviceRule } from './rules.js';
import { isAllRule } from './rules.js';

/** BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_* from include/uapi/linux/bpf.h */
export const DEVCG = { DEV_BLOCK: 1, DEV_CHAR: 2, ACC_MKNOD: 1, ACC_READ: 2, ACC_WRITE: 4 } as const;

/** The opcodes emitted (class | op | source), from include/uapi/linux/bpf.h and bpf_common.h. */
export const OP = {
  LDX_MEM_W: 0x61, // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off), zero-extended
  MOV64_X: 0xbf, // BPF_ALU64 | BPF_MOV | BPF_X
  MOV64_K: 0xb7, // BPF_ALU64 | BPF_MOV | BPF_K
  AND64_K: 0x57, // BPF_ALU64 | BPF_AND | BPF_K
  RSH64_K: 0x77, // BPF_ALU64 | BPF_RSH | BPF_K
  JEQ_K: 0x15, // BPF_JMP | BPF_JEQ | BPF_K: offsets count instructions after the next one
  JNE_K: 0x55, // BPF_JMP | BPF_JNE | BPF_K
  EXIT: 0x95, // BPF_JMP | BPF_EXIT: returns r0
} as const;

export interface Insn {
  op: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const insn = (op: number, dst: number, src: number, off: number, imm: number): Insn => ({ op, dst, src, off, imm });

// Registers: r1 holds the context on entry; r0 is the result.
const R0 = 0, R1 = 1, ACC = 2, TYPE = 3, MAJOR = 4, MINOR = 5;

function accessBits(access: string): number {
  return (access.includes('m') ? DEVCG.ACC_MKNOD : 0) | (access.includes('r') ? DEVCG.ACC_READ : 0) | (access.includes('w') ? DEVCG.ACC_WRITE : 0);
}

/**
 * The rules as eBPF: the last matching rule decides (the spec's order), so rules are
 * tested from the end; a rule matching everything ends the program, and the ones
 * before it are never emitted. Without a match the device is allowed, as in a fresh v1
 * cgroup, so v1 and v2 hosts give a container the same devices.
 */
export function buildDeviceProgram(rules: readonly DeviceRule[]): Insn[] {
  const out: Insn[] = [
    insn(OP.LDX_MEM_W, ACC, R1, 0, 0),
    insn(OP.MOV64_X, TYPE, ACC, 0, 0),
    insn(OP.AND64_K, TYPE, 0, 0, 0xffff),
    insn(OP.RSH64_K, ACC, 0, 0, 16),
    insn(OP.LDX_MEM_W, MAJOR, R1, 4, 0),
    insn(OP.LDX_MEM_W, MINOR, R1, 8, 0),
  ];
  let ended = false;
  for (let i = rules.length - 1; i >= 0 && !ended; i--) {
    const r = rules[i]!;
    // Each check jumps to the block's end when the rule does not match; the targets are
    // patched once the block's length is known. null marks "jump to next rule".
    const block: Array<Insn & { toNext?: boolean }> = [];
    if (r.type !== 'a') block.push({ ...insn(OP.JNE_K, TYPE, 0, 0, r.type === 'b' ? DEVCG.DEV_BLOCK : DEVCG.DEV_CHAR), toNext: true });
    if (r.major !== null) block.push({ ...insn(OP.JNE_K, MAJOR, 0, 0, r.major | 0), toNext: true });
    if (r.minor !== null) block.push({ ...insn(OP.JNE_K, MINOR, 0, 0, r.minor | 0), toNext: true });
    const bits = accessBits(r.access);
    if (bits !== 7) {
      block.push(insn(OP.MOV64_X, R0, ACC, 0, 0));
      if (r.allow) {
        // allow only if every requested access is in the rule: (acc & ~bits) == 0
        block.push(insn(OP.AND64_K, R0, 0, 0, ~bits & 7));
        block.push({ ...insn(OP.JNE_K, R0, 0, 0, 0), toNext: true });
      } else {
        // deny as soon as one requested access is in the rule: (acc & bits) != 0
        block.push(insn(OP.AND64_K, R0, 0, 0, bits));
        block.push({ ...insn(OP.JEQ_K, R0, 0, 0, 0), toNext: true });
      }
    }
    block.push(insn(OP.MOV64_K, R0, 0, 0, r.allow ? 1 : 0));
    block.push(insn(OP.EXIT, 0, 0, 0, 0));
    block.forEach((b, j) => {
      const { toNext, ...plain } = b;
      out.push(toNext ? { ...plain, off: block.length - (j + 1) } : plain);
    });
    // A block with no condition always returns: nothing after it can run.
    if (isAllRule(r) || block.length === 2) ended = true;
  }
  if (!ended) out.push(insn(OP.MOV64_K, R0, 0, 0, 1), insn(OP.EXIT, 0, 0, 0, 0));
  return out;
}

/** struct bpf_insn: u8 code, u8 dst_reg:4 src_reg:4 (dst in the low nibble on little-endian), s16 off, s32 imm. */
export function encodeProgram(prog: readonly Insn[]): Buffer {
  const b = Buffer.alloc(prog.length * 8);
  prog.forEach((p, i) => {
    b.writeUInt8(p.op, i * 8);
    b.writeUInt8(((p.src & 0xf) << 4) | (p.dst & 0xf), i * 8 + 1);
    b.writeInt16LE(p.off, i * 8 + 2);
    b.writeInt32LE(p.imm | 0, i * 8 + 4);
  });
  return b;
}

export function decodeProgram(b: Buffer): Insn[] {
  const out: Insn[] = [];
  for (let i = 0; i + 8 <= b.length; i += 8) {
    const regs = b.readUInt8(i + 1);
    out.push({ op: b.readUInt8(i), dst: regs & 0xf, src: regs >> 4, off: b.readInt16LE(i + 2), imm: b.readInt32LE(i + 4) });
  }
  return out;
}

/**
 * Runs an encoded program on one device access, for tests and `--trace` checks: an
 * interpreter of exactly the instructions above, with the kernel's semantics (64-bit
 * registers, imm sign-extended to 64 bits, u32 loads zero-extended). Throws on any other
 * opcode, on a jump out of the program, on a read of an unset register or outside the
 * 12-byte context, so an emitter bug fails a test instead of passing by accident.
 */
export function runDeviceProgram(code: Buffer, ctx: { type: 'c' | 'b'; major: number; minor: number; access: string }): number {
  const prog = decodeProgram(code);
  const mem = Buffer.alloc(12);
  mem.writeUInt32LE(((accessBits(ctx.access) << 16) | (ctx.type === 'b' ? DEVCG.DEV_BLOCK : DEVCG.DEV_CHAR)) >>> 0, 0);
  mem.writeUInt32LE(ctx.major >>> 0, 4);
  mem.writeUInt32LE(ctx.minor >>> 0, 8);
  const M = (1n << 64n) - 1n;
  const reg: Array<bigint | undefined> = new Array(11).fill(undefined);
  reg[R1] = 0n; // the context pointer; only loads through it are understood
  const get = (r: number): bigint => {
    const v = reg[r];
    if (v === undefined) throw new Error(`eBPF: read of unset register r${r}`);
    return v;
  };
  const simm = (imm: number): bigint => BigInt.asUintN(64, BigInt(imm));
  for (let pc = 0, steps = 0; steps < 10_000; steps++) {
    const p = prog[pc];
    if (!p) throw new Error(`eBPF: fell off the program at ${pc}`);
    pc++;
    switch (p.op) {
      case OP.LDX_MEM_W: {
        if (p.src !== R1) throw new Error('eBPF: load through a register that is not the context');
        if (p.off < 0 || p.off > 8 || p.off % 4 !== 0) throw new Error(`eBPF: context load at offset ${p.off}`);
        reg[p.dst] = BigInt(mem.readUInt32LE(p.off));
        break;
      }
      case OP.MOV64_X: reg[p.dst] = get(p.src); break;
      case OP.MOV64_K: reg[p.dst] = simm(p.imm); break;
      case OP.AND64_K: reg[p.dst] = get(p.dst) & simm(p.imm); break;
      case OP.RSH64_K: reg[p.dst] = (get(p.dst) >> BigInt(p.imm & 63)) & M; break;
      case OP.JEQ_K: if (get(p.dst) === simm(p.imm)) pc += p.off; break;
      case OP.JNE_K: if (get(p.dst) !== simm(p.imm)) pc += p.off; break;
      case OP.EXIT: return Number(get(R0));
      default: throw new Error(`eBPF: opcode 0x${p.op.toString(16)} not understood`);
    }
    if (pc < 0 || pc > prog.length) throw new Error(`eBPF: jump to ${pc} outside the program`);
  }
  throw new Error('eBPF: no exit within 10000 steps');
}
