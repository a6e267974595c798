// The process identity and privileges, applied on the setup thread just before it
// spawns the container process, in runc's order (finalizeNamespace): drop the bounding
// set while still fully privileged, keep capabilities across the uid change, switch
// groups then user, set the capability sets, raise ambient ones, then no_new_privs.
// Every call here is a raw per-thread syscall; glibc's setuid() would change every
// thread of tsrun.
import { PR, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE } from '../linux/constants.js';
import type { Kernel } from '../linux/kernel.js';
import type { ProcessSpec } from '../spec/types.js';
import { CAPABILITIES, capMask, capNames } from './capabilities.js';
import { TsrunError } from '../errors.js';

export function applyCredentials(k: Kernel, p: ProcessSpec, lastCap: number): void {
  const caps = p.capabilities ?? {};
  const bounding = capMask(caps.bounding, lastCap);
  // capset(2) can only keep what this thread holds; name what is missing instead of EPERM.
  const held = k.capget().permitted;
  const wanted = capMask([...(caps.permitted ?? []), ...(caps.effective ?? []), ...(caps.inheritable ?? [])], lastCap);
  const missing = wanted & ~held;
  if (missing) {
    throw new TsrunError('CONTAINER_SETUP', `the container asks for ${capNames(missing).join(', ')}, which tsrun itself does not have`, {
      hint: 'drop it from --cap-add / process.capabilities, or run tsrun with it',
    });
  }
  for (let c = 0; c <= lastCap; c++) {
    if (!((bounding >> BigInt(c)) & 1n)) {
      k.prctl(PR.PR_CAPBSET_DROP, c, 0, `drop ${capName(c)} from the bounding set: no execve can ever regain it`);
    }
  }
  const uid = p.user.uid;
  const gid = p.user.gid;
  if (uid !== 0) k.prctl(PR.PR_SET_KEEPCAPS, 1, 0, 'keep the permitted capabilities across the switch away from uid 0');
  k.setgroups(p.user.additionalGids ?? [], 'supplementary groups of the container user (process.user.additionalGids)');
  k.setresgid(gid, gid, gid, `become gid ${gid}`);
  k.setresuid(uid, uid, uid, `become uid ${uid}`);
  k.capset(
    { effective: capMask(caps.effective, lastCap), permitted: capMask(caps.permitted, lastCap), inheritable: capMask(caps.inheritable, lastCap) },
    'keep exactly the capabilities the spec lists; inheritable stays empty unless asked (CVE-2022-29162)',
  );
  k.prctl(PR.PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 'clear the ambient set: nothing is inherited by default');
  for (const name of caps.ambient ?? []) {
    const c = CAPABILITIES[name]!;
    if (c <= lastCap) k.prctl(PR.PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, `raise ${name} in the ambient set, so a non-root program keeps it across execve`);
  }
  if (uid !== 0) k.prctl(PR.PR_SET_KEEPCAPS, 0, 0, 'keepcaps was only for the uid switch');
  if (p.noNewPrivileges) k.prctl(PR.PR_SET_NO_NEW_PRIVS, 1, 0, 'no_new_privs: setuid binaries and file capabilities cannot raise privileges after execve');
}

function capName(c: number): string {
  return Object.entries(CAPABILITIES).find(([, v]) => v === c)?.[0] ?? `cap ${c}`;
}
