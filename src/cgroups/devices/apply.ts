// Enforcing the device rules in the kernel. Creating a node needs only CAP_MKNOD (a
// default capability), so the node's existence proves nothing; what stops a container
// from reading the host's disks is the device cgroup, asked on every open() and mknod()
// of a device (devcgroup_inode_permission / devcgroup_inode_mknod).
import { TsrunError } from '../../errors.js';
import { O } from '../../linux/constants.js';
import { KernelError, type Kernel } from '../../linux/kernel.js';
import { tracer } from '../../trace/tracer.js';
import type { Ctl } from '../types.js';
import { buildDeviceProgram, encodeProgram } from './ebpf.js';
import { type DeviceRule, isAllRule, v1Line } from './rules.js';

/** From include/uapi/linux/bpf.h */
export const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
export const BPF_CGROUP_DEVICE = 6;
export const BPF_F_ALLOW_MULTI = 2;

/**
 * cgroup v1: the devices controller keeps a default (allow or deny) plus exceptions.
 * Writing "a" to devices.deny makes the default deny and clears the exceptions; each
 * later line adds an exception. Written in the spec's order, the kernel ends in the
 * state the list describes (Documentation/admin-guide/cgroup-v1/devices.rst). A child
 * can never gain what its parent lacks: the kernel refuses such a line with EPERM.
 */
export function applyDevicesV1(c: Ctl, rules: readonly DeviceRule[]): void {
  // Rules before the last "all" rule are overridden by it: skip them, as the kernel
  // would discard them anyway.
  let start = 0;
  for (let i = rules.length - 1; i >= 0; i--) {
    if (isAllRule(rules[i]!)) {
      start = i;
      break;
    }
  }
  rules.slice(start).forEach((r, j) => {
    const i = start + j;
    const file = r.allow ? 'devices.allow' : 'devices.deny';
    const line = v1Line(r);
    c.write(file, line, { flag: 'device allowlist', field: `linux.resources.devices[${i}]`, value: line });
  });
}

/**
 * cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup.
 * BPF_F_ALLOW_MULTI keeps programs attached above (a systemd unit's own device policy)
 * in force too: the kernel runs every program from the cgroup up and an access needs
 * all of them to allow it. The cgroup holds a reference to the program, so the fds
 * can be closed at once; removing the cgroup releases it.
 */
export function applyDevicesV2(k: Kernel, dir: string, rules: readonly DeviceRule[]): void {
  if (rules.length === 0) return;
  const t0 = tracer.on ? tracer.now() : undefined;
  const prog = buildDeviceProgram(rules);
  let progFd: number;
  try {
    // No GPL license: this program type calls no GPL-only helper.
    progFd = k.bpfProgLoad(BPF_PROG_TYPE_CGROUP_DEVICE, encodeProgram(prog), 'Apache-2.0', `load the device filter: ${rules.length} rules as ${prog.length} eBPF instructions`);
  } catch (e) {
    throw bpfError('load', e);
  }
  try {
    const cgfd = k.open(dir, O.O_RDONLY | O.O_DIRECTORY | O.O_CLOEXEC, 0, 'the container\'s cgroup directory, to attach the device filter to');
    try {
      k.bpfProgAttach(cgfd, progFd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 'attach the device filter: every open() and mknod() of a device in this cgroup now asks it');
    } catch (e) {
      throw bpfError('attach', e);
    } finally {
      k.close(cgfd);
    }
  } finally {
    k.close(progFd);
  }
  tracer.step('step', 'devices', `${rules.length} rules`, 'cgroup v2 device filter attached (eBPF)', t0);
}

function bpfError(what: 'load' | 'attach', e: unknown): TsrunError {
  const code = e instanceof KernelError ? e.code : '';
  const hint =
    code === 'EPERM' ? 'loading eBPF programs needs CAP_SYS_ADMIN (or CAP_BPF) in the initial user namespace'
      : (code === 'EINVAL' || code === 'EACCES') && what === 'load' ? 'the kernel\'s verifier refused the device program: this is a tsrun bug, please report it with the message above'
        : 'the kernel needs CONFIG_CGROUP_BPF for the cgroup v2 device controller';
  return new TsrunError('CGROUP', `cannot ${what} the device access filter (linux.resources.devices): ${e instanceof Error ? e.message : String(e)}`, { hint, cause: e });
}
