// seccomp for tsrun: OCI linux.seccomp -> BPF (compile.ts), the default profile
// (default-profile.ts), Docker JSON profiles (docker-profile.ts), and installing the
// filter on the setup thread.
import { TsrunError } from '../../errors.js';
import { KernelError, type Kernel } from '../../linux/kernel.js';
import { compileSeccomp, type CompiledFilter, type LinuxSeccomp } from './compile.js';

export { compileSeccomp, nativeArch, actionValue, type LinuxSeccomp, type CompiledFilter, type SeccompArch } from './compile.js';
export { defaultSeccompProfile, kernelAllowsPtrace, DENIED } from './default-profile.js';
export { dockerProfileToOci, type ProfileContext } from './docker-profile.js';

/** Compiles the spec's section; null when the spec has none (unconfined). */
export function prepareSeccomp(section: Record<string, unknown> | undefined): CompiledFilter | null {
  if (!section) return null;
  return compileSeccomp(section as unknown as LinuxSeccomp);
}

/**
 * Installs the filter on the calling thread (seccomp filters are per thread unless
 * TSYNC, which tsrun never sets: the other threads are tsrun's own). The kernel demands
 * no_new_privs or CAP_SYS_ADMIN in the caller (seccomp(2), EACCES otherwise).
 */
export function installSeccomp(k: Kernel, f: CompiledFilter): void {
  try {
    k.seccompSetFilter(f.program, f.flags, `install the container's seccomp filter (${f.insns.length} BPF instructions); the child inherits it across posix_spawn and execve`);
  } catch (e) {
    if (e instanceof KernelError) {
      throw new TsrunError('CONTAINER_SETUP', `installing the seccomp filter: ${e.message}`, {
        hint: e.code === 'EACCES' ? 'the setup thread had neither no_new_privs nor CAP_SYS_ADMIN' : e.code === 'EINVAL' ? 'the kernel rejected the BPF program or a filter flag' : undefined,
        cause: e,
      });
    }
    throw e;
  }
}
