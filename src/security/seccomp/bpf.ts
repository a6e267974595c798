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

export type Label = string;
type Target = Label | 'next';

type Item =
  | { t: 'insn'; insn: Insn }
  | { t: 'jump'; code: number; k: number; jt: Target; jf: Target }
  | { t: 'ja'; to: Label }
  | { t: 'label'; name: Label };

/** The kernel's limit on a filter program (BPF_MAXINSNS). */
export const MAX_INSNS = 4096;

export class Assembler {
  private readonly items: Item[] = [];
  private seq = 0;

  /** A fresh label name. */
  label(hint = 'L'): Label {
    return `${hint}#${this.seq++}`;
  }

  bind(name: Label): this {
    this.items.push({ t: 'label', name });
    return this;
  }

  ldAbs(offset: number): this {
    this.items.push({ t: 'insn', insn: { code: BPF.LD | BPF.W | BPF.ABS, jt: 0, jf: 0, k: offset } });
    return this;
  }

  and(k: number): this {
    this.items.push({ t: 'insn', insn: { code: BPF.ALU | BPF.AND | BPF.K, jt: 0, jf: 0, k: k >>> 0 } });
    return this;
  }

  ret(k: number): this {
    this.items.push({ t: 'insn', insn: { code: BPF.RET | BPF.K, jt: 0, jf: 0, k: k >>> 0 } });
    return this;
  }

  /** if (A <op> k) goto jt else goto jf; 'next' is the following instruction. */
  jump(op: 'jeq' | 'jgt' | 'jge' | 'jset', k: number, jt: Target, jf: Target): this {
    const code = BPF.JMP | BPF.K | { jeq: BPF.JEQ, jgt: BPF.JGT, jge: BPF.JGE, jset: BPF.JSET }[op];
    this.items.push({ t: 'jump', code, k: k >>> 0, jt, jf });
    return this;
  }

  ja(to: Label): this {
    this.items.push({ t: 'ja', to });
    return this;
  }

  /**
   * Resolves labels and returns the instructions. A conditional branch whose target is
   * further than 255 instructions goes through a `ja` placed right after it; placing
   * those can push other branches out of range, so it repeats until nothing changes.
   */
  assemble(): Insn[] {
    const far = new Set<number>(); // "item index:branch" keys, encoded as idx*2 + (0 jt | 1 jf)
    for (let round = 0; round < 64; round++) {
      const { pos, labels } = this.layout(far);
      let changed = false;
      this.items.forEach((it, i) => {
        if (it.t !== 'jump') return;
        (['jt', 'jf'] as const).forEach((b, bi) => {
          const key = i * 2 + bi;
          if (far.has(key) || it[b] === 'next') return;
          const dist = this.resolve(labels, it[b]) - (pos[i]! + 1);
          if (dist > 255) {
            far.add(key);
            changed = true;
          }
        });
      });
      if (!changed) return this.emit(far, pos, labels);
    }
    throw new Error('seccomp BPF: branch layout did not converge');
  }

  private trampolines(far: Set<number>, i: number): number {
    return (far.has(i * 2) ? 1 : 0) + (far.has(i * 2 + 1) ? 1 : 0);
  }

  private layout(far: Set<number>): { pos: number[]; labels: Map<Label, number> } {
    const pos: number[] = [];
    const labels = new Map<Label, number>();
    let pc = 0;
    this.items.forEach((it, i) => {
      pos[i] = pc;
      if (it.t === 'label') {
        if (labels.has(it.name)) throw new Error(`seccomp BPF: label ${it.name} bound twice`);
        labels.set(it.name, pc);
      } else {
        pc += 1 + (it.t === 'jump' ? this.trampolines(far, i) : 0);
      }
    });
    return { pos, labels };
  }

  private resolve(labels: Map<Label, number>, l: Label): number {
    const p = labels.get(l);
    if (p === undefined) throw new Error(`seccomp BPF: label ${l} is never bound`);
    return p;
  }

  private emit(far: Set<number>, pos: number[], labels: Map<Label, number>): Insn[] {
    const out: Insn[] = [];
    this.items.forEach((it, i) => {
      if (it.t === 'label') return;
      if (it.t === 'insn') {
        out.push({ ...it.insn });
        return;
      }
      const pc = pos[i]!;
      if (it.t === 'ja') {
        const d = this.resolve(labels, it.to) - (pc + 1);
        if (d < 0) throw new Error('seccomp BPF: backward jump');
        out.push({ code: BPF.JMP | BPF.JA, jt: 0, jf: 0, k: d });
        return;
      }
      const tramp = this.trampolines(far, i);
      const off = (b: 'jt' | 'jf', bi: number): number => {
        if (far.has(i * 2 + bi)) return bi === 1 && far.has(i * 2) ? 1 : 0; // its own trampoline
        if (it[b] === 'next') return tramp;
        const d = this.resolve(labels, it[b] as Label) - (pc + 1);
        if (d < tramp) throw new Error('seccomp BPF: backward jump');
        return d;
      };
      out.push({ code: it.code, jt: off('jt', 0), jf: off('jf', 1), k: it.k });
      for (const [b, bi] of [['jt', 0], ['jf', 1]] as const) {
        if (!far.has(i * 2 + bi)) continue;
        const here = out.length; // pc of this trampoline
        out.push({ code: BPF.JMP | BPF.JA, jt: 0, jf: 0, k: this.resolve(labels, it[b] as Label) - (here + 1) });
      }
    });
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
