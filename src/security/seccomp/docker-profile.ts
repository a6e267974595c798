// A Docker seccomp profile (the JSON that `docker run --security-opt seccomp=FILE`
// takes) -> the OCI linux.seccomp section. Docker's format is a superset of OCI's:
// `archMap` instead of `architectures`, and per-entry `includes`/`excludes` that keep
// or drop an entry by the container's capabilities, the CPU architecture and the
// kernel version. Those are decided here, once, for this container; what remains is
// plain OCI. A plain OCI section passes through unchanged.
import { TsrunError } from '../../errors.js';
import type { LinuxSeccomp, SeccompArch, SeccompArg, SeccompSyscall } from './compile.js';

interface Filter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

interface DockerSyscall {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[] | null;
  includes?: Filter;
  excludes?: Filter;
  comment?: string;
}

interface DockerProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }> | null;
  syscalls?: DockerSyscall[] | null;
  flags?: string[];
  listenerPath?: string;
}

export interface ProfileContext {
  /** the container's bounding capabilities, CAP_-prefixed */
  capabilities: string[];
  kernelRelease: string;
  arch: SeccompArch;
}

/** The names Docker (Go's GOARCH) and libseccomp use for this machine. */
const ARCH_NAMES: Record<SeccompArch, string[]> = {
  x86_64: ['amd64', 'x86_64', 'SCMP_ARCH_X86_64'],
  aarch64: ['arm64', 'aarch64', 'SCMP_ARCH_AARCH64'],
  x86: ['386', 'x86', 'SCMP_ARCH_X86'],
  x32: ['x32', 'SCMP_ARCH_X32'],
};

function kernelAtLeast(release: string, min: string): boolean {
  const parse = (s: string): number[] => (/^(\d+)(?:\.(\d+))?/.exec(s) ?? []).slice(1).map((x) => Number(x ?? 0));
  const [a = 0, b = 0] = parse(release);
  const [c = 0, d = 0] = parse(min);
  return a > c || (a === c && b >= d);
}

function invalid(file: string, message: string): TsrunError {
  return new TsrunError('USAGE', `seccomp profile ${file}: ${message}`, { hint: 'give a Docker or OCI seccomp profile (JSON), or seccomp=unconfined' });
}

export function dockerProfileToOci(raw: unknown, ctx: ProfileContext, file = 'profile'): LinuxSeccomp {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(file, 'not a JSON object');
  const p = raw as DockerProfile;
  if (typeof p.defaultAction !== 'string') throw invalid(file, 'defaultAction is missing');
  const caps = new Set(ctx.capabilities);
  const mine = ARCH_NAMES[ctx.arch];

  let architectures: string[] = [];
  if (p.archMap && p.architectures?.length) throw invalid(file, 'use either architectures or archMap, not both');
  if (p.archMap) {
    for (const m of p.archMap) {
      if (mine.includes(m.architecture)) architectures.push(m.architecture, ...(m.subArchitectures ?? []));
    }
  } else {
    architectures = [...(p.architectures ?? [])];
  }

  const keep = (s: DockerSyscall): boolean => {
    const inc = s.includes ?? {};
    const exc = s.excludes ?? {};
    if (inc.caps?.length && !inc.caps.every((c) => caps.has(c))) return false;
    if (inc.arches?.length && !inc.arches.some((a) => mine.includes(a))) return false;
    if (inc.minKernel && !kernelAtLeast(ctx.kernelRelease, inc.minKernel)) return false;
    if (exc.caps?.some((c) => caps.has(c))) return false;
    if (exc.arches?.some((a) => mine.includes(a))) return false;
    if (exc.minKernel && kernelAtLeast(ctx.kernelRelease, exc.minKernel)) return false;
    return true;
  };

  const syscalls: SeccompSyscall[] = [];
  (p.syscalls ?? []).forEach((s, i) => {
    if (typeof s !== 'object' || s === null) throw invalid(file, `syscalls[${i}] is not an object`);
    const names = s.names?.length ? s.names : s.name ? [s.name] : [];
    if (!names.length) throw invalid(file, `syscalls[${i}] names no syscall`);
    if (typeof s.action !== 'string') throw invalid(file, `syscalls[${i}].action is missing`);
    if (!keep(s)) return;
    const out: SeccompSyscall = { names, action: s.action };
    if (s.errnoRet !== undefined) out.errnoRet = s.errnoRet;
    if (s.args?.length) out.args = s.args;
    syscalls.push(out);
  });

  const out: LinuxSeccomp = { defaultAction: p.defaultAction, syscalls };
  if (p.defaultErrnoRet !== undefined) out.defaultErrnoRet = p.defaultErrnoRet;
  if (architectures.length) out.architectures = architectures;
  if (p.flags?.length) out.flags = p.flags;
  if (p.listenerPath) out.listenerPath = p.listenerPath;
  return out;
}
