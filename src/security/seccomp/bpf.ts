// A small assembler for classic BPF as seccomp uses it (linux/filter.h, linux/bpf_common.h).
//
// Classic BPF jumps only forward, and a conditional jump's offsets (jt, jf) are 8-bit:
// a target more than 255 instructions away needs an unconditional `ja` (32-bit offset)
// as a trampoline. The assembler takes symbolic labels and inserts those trampolines
// itself, so the code generator never counts instructions.

/** Opcode parts (linux/bpf_common.h). */
export const BPF = {
  LD: 0x00, ALU: 0x04, JMP: 0x05, RET: 0x06,
  W: 0x00, ABS: 0x20,
  AND: 0x50,
  JA: 0x00, JEQ: 0x10, JGT: 0x20, JGE: 0x30, JSET: 0x40,
  K: 0x00,
} as const;

/** SECCOMP_RET_* (linux/seccomp.h): the high 16 bits pick the action, the low 16 carry data. */
export const RET = {
  KILL_PROCESS: 0x80000000, KILL_THREAD: 0x00000000, TRAP: 0x00030000, ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000, TRACE: 0x7ff00000, LOG: 0x7ffc0000, ALLOW: 0x7fff0000,
} as const;
export const RET_DATA = 0x0000ffff;

/** AUDIT_ARCH_* (linux/audit.h): EM_* machine | 64-bit flag | little-endian flag. */
export const AUDIT_ARCH = {
  x86_64: 0xc000003e, x86: 0x40000003, x32: 0xc000003e, aarch64: 0xc00000b7,
} as const;
/** x32 syscalls arrive with AUDIT_ARCH_X86_64 and this bit set in the number. */
export const X32_SYSCALL_BIT = 0x40000000;

/** struct seccomp_data offsets: nr, arch, instruction_pointer, args[6] (u64 each). */
export const DATA = { nr: 0, arch: 4, ip: 8, args: 16 } as const;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** A jump target: a name, or a number from Assembler.label(). */
export type Label = string | number;
type Target = Label | 'next';

const NEXT = -1;
const K_INSN = 0;
const K_JUMP = 1;
const K_JA = 2;
const K_LABEL = 3;

/** The kernel's limit on a filter program (BPF_MAXINSNS). */
export const MAX_INSNS = 4096;

// Items live in parallel arrays and labels are numbers: the default profile is ~1200
// instructions, and the setup thread compiles it on every container start, cold (no
// JIT yet), so object churn here shows up in start-up time.
export class Assembler {
  private readonly kind: number[] = [];
  private readonly code: number[] = [];
  private readonly k: number[] = [];
  private readonly jt: number[] = [];
  private readonly jf: number[] = [];
  private readonly named = new Map<string, number>();
  private nLabels = 0;

  /** A fresh label. */
  label(_hint = 'L'): number {
    return this.nLabels++;
  }

  private id(l: Label): number {
    if (typeof l === 'number') return l;
    let n = this.named.get(l);
    if (n === undefined) {
      n = this.nLabels++;
      this.named.set(l, n);
    }
    return n;
  }

  private push(kind: number, code: number, k: number, jt: number, jf: number): this {
    this.kind.push(kind);
    this.code.push(code);
    this.k.push(k >>> 0);
    this.jt.push(jt);
    this.jf.push(jf);
    return this;
  }

  bind(name: Label): this {
    return this.push(K_LABEL, 0, 0, this.id(name), 0);
  }

  ldAbs(offset: number): this {
    return this.push(K_INSN, BPF.LD | BPF.W | BPF.ABS, offset, 0, 0);
  }

  and(k: number): this {
    return this.push(K_INSN, BPF.ALU | BPF.AND | BPF.K, k, 0, 0);
  }

  ret(k: number): this {
    return this.push(K_INSN, BPF.RET | BPF.K, k, 0, 0);
  }

  /** if (A <op> k) goto jt else goto jf; 'next' is the following instruction. */
  jump(op: 'jeq' | 'jgt' | 'jge' | 'jset', k: number, jt: Target, jf: Target): this {
    const code = BPF.JMP | BPF.K | (op === 'jeq' ? BPF.JEQ : op === 'jgt' ? BPF.JGT : op === 'jge' ? BPF.JGE : BPF.JSET);
    return this.push(K_JUMP, code, k, jt === 'next' ? NEXT : this.id(jt), jf === 'next' ? NEXT : this.id(jf));
  }

  ja(to: Label): this {
    return this.push(K_JA, BPF.JMP | BPF.JA, 0, this.id(to), 0);
  }

  /**
   * Resolves labels and returns the instructions. A conditional branch whose target is
   * further than 255 instructions goes through a `ja` placed right after it; placing
   * those can push other branches out of range, so it repeats until nothing changes.
   */
  assemble(): Insn[] {
    const n = this.kind.length;
    // far[i]: bit 1 = jt needs a trampoline, bit 2 = jf does
    const far = new Uint8Array(n);
    const pos = new Int32Array(n);
    const labelPos = new Int32Array(this.nLabels).fill(-1);
    for (let round = 0; round < 64; round++) {
      let pc = 0;
      labelPos.fill(-1);
      for (let i = 0; i < n; i++) {
        pos[i] = pc;
        if (this.kind[i] === K_LABEL) {
          const l = this.jt[i]!;
          if (labelPos[l] !== -1) throw new Error(`seccomp BPF: label ${this.labelName(l)} bound twice`);
          labelPos[l] = pc;
        } else {
          pc += 1 + (far[i]! & 1) + ((far[i]! >> 1) & 1);
        }
      }
      let changed = false;
      for (let i = 0; i < n; i++) {
        if (this.kind[i] !== K_JUMP) continue;
        for (let b = 0; b < 2; b++) {
          const bit = 1 << b;
          const t = b === 0 ? this.jt[i]! : this.jf[i]!;
          if (t === NEXT || far[i]! & bit) continue;
          if (this.at(labelPos, t) - (pos[i]! + 1) > 255) {
            far[i] = far[i]! | bit;
            changed = true;
          }
        }
      }
      if (!changed) return this.emit(far, pos, labelPos);
    }
    throw new Error('seccomp BPF: branch layout did not converge');
  }

  private labelName(l: number): string {
    for (const [k, v] of this.named) if (v === l) return k;
    return `#${l}`;
  }

  private at(labelPos: Int32Array, l: number): number {
    const p = labelPos[l]!;
    if (p < 0) throw new Error(`seccomp BPF: label ${this.labelName(l)} is never bound`);
    return p;
  }

  private emit(far: Uint8Array, pos: Int32Array, labelPos: Int32Array): Insn[] {
    const out: Insn[] = [];
    for (let i = 0; i < this.kind.length; i++) {
      const kind = this.kind[i]!;
      if (kind === K_LABEL) continue;
      const pc = pos[i]!;
      if (kind === K_INSN) {
        out.push({ code: this.code[i]!, jt: 0, jf: 0, k: this.k[i]! });
        continue;
      }
      if (kind === K_JA) {
        const d = this.at(labelPos, this.jt[i]!) - (pc + 1);
        if (d < 0) throw new Error('seccomp BPF: backward jump');
        out.push({ code: this.code[i]!, jt: 0, jf: 0, k: d });
        continue;
      }
      const f = far[i]!;
      const tramp = (f & 1) + ((f >> 1) & 1);
      const off = (t: number, bit: number): number => {
        if (f & bit) return bit === 2 && f & 1 ? 1 : 0; // its own trampoline, right after
        if (t === NEXT) return tramp;
        const d = this.at(labelPos, t) - (pc + 1);
        if (d < tramp) throw new Error('seccomp BPF: backward jump');
        return d;
      };
      out.push({ code: this.code[i]!, jt: off(this.jt[i]!, 1), jf: off(this.jf[i]!, 2), k: this.k[i]! });
      if (f & 1) out.push({ code: BPF.JMP | BPF.JA, jt: 0, jf: 0, k: this.at(labelPos, this.jt[i]!) - out.length - 1 });
      if (f & 2) out.push({ code: BPF.JMP | BPF.JA, jt: 0, jf: 0, k: this.at(labelPos, this.jf[i]!) - out.length - 1 });
    }
    if (out.length > MAX_INSNS) throw new Error(`seccomp BPF: ${out.length} instructions, the kernel accepts at most ${MAX_INSNS}`);
    return out;
  }
}

/** struct sock_filter[] as the kernel reads it (host byte order; both supported arches are little-endian). */
export function encode(prog: Insn[]): Buffer {
  const b = Buffer.alloc(prog.length * 8);
  prog.forEach((p, i) => {
    b.writeUInt16LE(p.code, i * 8);
    b.writeUInt8(p.jt, i * 8 + 2);
    b.writeUInt8(p.jf, i * 8 + 3);
    b.writeUInt32LE(p.k >>> 0, i * 8 + 4);
  });
  return b;
}

export function decode(b: Buffer): Insn[] {
  const out: Insn[] = [];
  for (let o = 0; o + 8 <= b.length; o += 8) {
    out.push({ code: b.readUInt16LE(o), jt: b.readUInt8(o + 2), jf: b.readUInt8(o + 3), k: b.readUInt32LE(o + 4) });
  }
  return out;
}
