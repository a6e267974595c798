/** RLIM_INFINITY, as the kernel's u64. */
export const RLIM_INFINITY = 0xffffffffffffffffn;

/**
 * A spec rlimit value as the u64 prlimit(2) takes. The OCI spec writes "unlimited" as
 * 2^64-1, which no JavaScript number holds: JSON.parse (and docker's -1) give 2^64.
 * Anything at or above 2^64-1 therefore means unlimited.
 */
export function rlimitToU64(v: number): bigint {
  return v >= 2 ** 64 - 1 ? RLIM_INFINITY : BigInt(Math.trunc(v));
}
