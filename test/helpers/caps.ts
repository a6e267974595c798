// What this host lets root do. The project's machines run root without
// CAP_SYS_RESOURCE (CapBnd 000001fffeffffff): no process can raise a hard rlimit
// there, and tsrun says so. Tests of raising run where root has the capability, and
// assert the clear error where it does not.
import { readFileSync } from 'node:fs';

const CAP_SYS_RESOURCE = 24;

function bounding(): bigint {
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt('0x' + m[1]) : 0n;
}

export const HAS_SYS_RESOURCE = ((bounding() >> BigInt(CAP_SYS_RESOURCE)) & 1n) === 1n;

/** The error tsrun gives in that case (src/runtime/launcher.ts). */
export const NO_SYS_RESOURCE_ERROR = /needs CAP_SYS_RESOURCE/;
