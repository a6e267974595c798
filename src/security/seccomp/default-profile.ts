// tsrun's default seccomp profile, meant to match Docker's default in effect: every
// syscall the kernel's tables know is allowed, except the ones below, which the
// container gets EPERM for. Syscalls newer than the tables get ENOSYS (compile.ts), so
// libc falls back to older calls instead of failing.
//
// The list is written from what each syscall does (man 2 pages, the kernel's
// capability checks), not copied from Docker's JSON. Most entries are already refused
// by the missing capability; seccomp is the second wall, against kernel bugs reachable
// before (or despite) the capability check, and against syscalls that are not
// namespaced at all. Where a capability is granted (--cap-add), the syscalls it exists
// for are allowed again, as Docker does.
import { SYSCALL_TABLES } from './tables.js';
import type { LinuxSeccomp, SeccompArch, SeccompSyscall } from './compile.js';

interface Denied {
  names: string[];
  /** allowed again when the container has any of these capabilities */
  unlessCap?: string[];
  why: string;
}

// CLONE_NEW* flags (linux/sched.h): NEWNS 0x20000, NEWCGROUP 0x2000000, NEWUTS 0x4000000,
// NEWIPC 0x8000000, NEWUSER 0x10000000, NEWPID 0x20000000, NEWNET 0x40000000.
const CLONE_NS_FLAGS = 0x7e020000;
// unshare() also takes CLONE_NEWTIME (0x80), which clone() cannot (it is in CSIGNAL there).
const UNSHARE_NS_FLAGS = CLONE_NS_FLAGS | 0x80;
const AF_VSOCK = 40;

export const DENIED: Denied[] = [
  { names: ['mount', 'umount', 'umount2', 'pivot_root', 'open_tree', 'open_tree_attr', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr'],
    unlessCap: ['CAP_SYS_ADMIN'], why: 'mount-table changes: the classic way to reach host paths or hide masked ones' },
  { names: ['unshare', 'setns'], unlessCap: ['CAP_SYS_ADMIN'],
    why: 'new or joined namespaces (user namespaces especially) expose kernel code normally reserved for root; unshare without namespace flags stays allowed below' },
  { names: ['clone', 'clone3'], unlessCap: ['CAP_SYS_ADMIN'],
    why: 'clone with CLONE_NEW* flags creates namespaces; plain clone is allowed below, clone3 gets ENOSYS (its flags are in memory seccomp cannot read) so libc falls back to clone' },
  { names: ['keyctl', 'add_key', 'request_key'], why: 'the kernel keyring is not namespaced: keys of the host and of other containers' },
  { names: ['kexec_load', 'kexec_file_load'], why: 'replaces the running kernel' },
  { names: ['reboot'], unlessCap: ['CAP_SYS_BOOT'], why: 'in a PID namespace it only ends init, so CAP_SYS_BOOT lifts it' },
  { names: ['init_module', 'finit_module', 'delete_module', 'create_module', 'get_kernel_syms', 'query_module'], unlessCap: ['CAP_SYS_MODULE'],
    why: 'loading code into the host kernel' },
  { names: ['bpf'], unlessCap: ['CAP_SYS_ADMIN', 'CAP_BPF'], why: 'eBPF programs run in the kernel and read kernel memory' },
  { names: ['perf_event_open'], unlessCap: ['CAP_SYS_ADMIN', 'CAP_PERFMON'], why: 'observes the whole machine; a long list of CVEs' },
  { names: ['userfaultfd'], why: 'makes kernel race conditions reliably exploitable' },
  { names: ['open_by_handle_at'], unlessCap: ['CAP_DAC_READ_SEARCH'], why: 'opens any inode of a mounted filesystem by handle, escaping the mount namespace ("shocker")' },
  { names: ['name_to_handle_at'], unlessCap: ['CAP_SYS_ADMIN'], why: 'the other half of open_by_handle_at' },
  { names: ['swapon', 'swapoff'], unlessCap: ['CAP_SYS_ADMIN'], why: 'host-wide memory configuration' },
  { names: ['quotactl', 'quotactl_fd', 'lookup_dcookie', 'fanotify_init'], unlessCap: ['CAP_SYS_ADMIN'], why: 'host-wide filesystem administration and tracing' },
  { names: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64', 'clock_adjtime', 'clock_adjtime64'], unlessCap: ['CAP_SYS_TIME'],
    why: 'the clock is not namespaced (time namespaces only offset monotonic/boottime)' },
  { names: ['acct'], unlessCap: ['CAP_SYS_PACCT'], why: 'process accounting to a file, host-wide' },
  { names: ['syslog'], unlessCap: ['CAP_SYSLOG'], why: 'the kernel log is the host\'s' },
  { names: ['vhangup'], unlessCap: ['CAP_SYS_TTY_CONFIG'], why: 'hangs up the terminal' },
  { names: ['iopl', 'ioperm'], unlessCap: ['CAP_SYS_RAWIO'], why: 'direct access to I/O ports' },
  { names: ['mbind', 'set_mempolicy', 'set_mempolicy_home_node', 'migrate_pages', 'move_pages'], unlessCap: ['CAP_SYS_NICE'],
    why: 'NUMA placement: can move other processes\' memory' },
  { names: ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd'], unlessCap: ['CAP_SYS_PTRACE'],
    why: 'before Linux 4.8 a tracer could change a syscall after seccomp had checked it; allowed on newer kernels (see kernelAllowsPtrace)' },
  { names: ['chroot'], unlessCap: ['CAP_SYS_CHROOT'], why: 'only for containers that keep CAP_SYS_CHROOT (the default set does)' },
  { names: ['io_uring_setup', 'io_uring_enter', 'io_uring_register'], why: 'io_uring bypasses seccomp for the operations it performs, and has had many privilege-escalation bugs' },
  { names: ['modify_ldt', 'vm86', 'vm86old'], why: 'x86 segment and virtual-8086 tricks used by kernel exploits, not by normal programs' },
  { names: ['uselib', 'nfsservctl', 'sysfs', 'ustat', '_sysctl', 'afs_syscall', 'tuxcall', 'security', 'vserver', 'getpmsg', 'putpmsg', 'remap_file_pages'],
    why: 'obsolete or unimplemented; old code paths with nothing to gain' },
  { names: ['memfd_secret', 'lsm_set_self_attr', 'lsm_get_self_attr', 'lsm_list_modules'], why: 'new interfaces no container workload needs; denied until there is a reason' },
];

/** Since Linux 4.8 the kernel re-checks seccomp after a tracer changes a syscall (commit 93e35efb8de4). */
export function kernelAllowsPtrace(release: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > 4 || (maj === 4 && min >= 8);
}

export interface DefaultProfileOptions {
  /** the container's capabilities (bounding set), CAP_-prefixed */
  capabilities: string[];
  /** uname -r */
  kernelRelease: string;
  arch: SeccompArch;
}

/** The default profile for a container with these capabilities, as an OCI linux.seccomp section. */
export function defaultSeccompProfile(o: DefaultProfileOptions): LinuxSeccomp {
  const caps = new Set(o.capabilities);
  const has = (c: string): boolean => caps.has(c);
  const arches: SeccompArch[] = o.arch === 'x86_64' ? ['x86_64', 'x86', 'x32'] : ['aarch64'];
  const denied = new Set<string>();
  for (const d of DENIED) {
    if (d.unlessCap?.some(has)) continue;
    if (d.names.includes('ptrace') && kernelAllowsPtrace(o.kernelRelease)) continue;
    for (const n of d.names) denied.add(n);
  }
  const known = new Set(arches.flatMap((a) => Object.keys(SYSCALL_TABLES[a])));
  const allowed = [...known].filter((n) => !denied.has(n)).sort();
  const syscalls: SeccompSyscall[] = [{ names: allowed, action: 'SCMP_ACT_ALLOW' }];
  if (denied.has('clone')) {
    // The first argument of clone is the flags word on x86 and arm64 (s390 swaps them).
    syscalls.push({ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NS_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] });
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 /* ENOSYS */ });
  }
  if (denied.has('unshare')) {
    // unshare(CLONE_FS), unshare(CLONE_FILES) and friends only un-share within the process.
    syscalls.push({ names: ['unshare'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: UNSHARE_NS_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] });
  }
  // personality(): only the harmless personas (PER_LINUX, PER_LINUX32, UNAME26 and
  // their combination) and the query 0xffffffff. Others, such as READ_IMPLIES_EXEC or
  // ADDR_NO_RANDOMIZE, weaken the process's own exploit mitigations.
  denied.add('personality');
  const personalityIdx = syscalls[0]!.names.indexOf('personality');
  if (personalityIdx >= 0) syscalls[0]!.names.splice(personalityIdx, 1);
  syscalls.push({
    names: ['personality'], action: 'SCMP_ACT_ALLOW',
    args: [0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map((value) => ({ index: 0, value, op: 'SCMP_CMP_EQ' as const })),
  });
  // AF_VSOCK talks to the hypervisor host, which network namespaces do not cover.
  const socketIdx = syscalls[0]!.names.indexOf('socket');
  if (socketIdx >= 0) syscalls[0]!.names.splice(socketIdx, 1);
  syscalls.push({ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }] });

  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    architectures: arches.map((a) => ({ x86_64: 'SCMP_ARCH_X86_64', x86: 'SCMP_ARCH_X86', x32: 'SCMP_ARCH_X32', aarch64: 'SCMP_ARCH_AARCH64' })[a]),
    syscalls,
  };
}
