// One error type for tsrun's own failures, with a stable code and a hint that says how
// to fix it. Only the CLI turns errors into text and exit codes.
import { KernelError } from './linux/kernel.js';

export type ErrorCode =
  | 'NOT_ROOT'
  | 'SPEC_INVALID'
  | 'USAGE'
  | 'KERNEL_FEATURE'
  | 'EXEC_NOT_FOUND'
  | 'EXEC_NOT_EXECUTABLE'
  | 'CONTAINER_SETUP'
  | 'NO_SUCH_CONTAINER'
  | 'STATE'
  | 'ROOTFS'
  | 'IMAGE'
  | 'REGISTRY'
  | 'CGROUP'
  | 'INTERNAL';

export class TsrunError extends Error {
  readonly hint: string | undefined;
  constructor(
    readonly code: ErrorCode,
    message: string,
    opts: { hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TsrunError';
    this.hint = opts.hint;
  }

  /** docker's convention: 125 for the engine's own errors, 126 not executable, 127 not found. */
  get exitCode(): number {
    if (this.code === 'EXEC_NOT_FOUND') return 127;
    if (this.code === 'EXEC_NOT_EXECUTABLE') return 126;
    return 125;
  }
}

/** Wraps a failure with what was being done, keeping the cause (runc: "error jailing process inside rootfs: %w"). */
export function wrap(what: string, e: unknown, code: ErrorCode = 'CONTAINER_SETUP'): TsrunError {
  if (e instanceof TsrunError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  let hint: string | undefined;
  if (e instanceof KernelError && e.code === 'EPERM') hint = 'tsrun needs root (or CAP_SYS_ADMIN) for this step';
  return new TsrunError(code, `${what}: ${msg}`, { cause: e, hint });
}

/** A plain-object form for crossing the worker boundary. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  hint?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof KernelError) e = wrap('setting up the container', e);
  if (e instanceof TsrunError) return { code: e.code, message: e.message, hint: e.hint };
  return { code: 'INTERNAL', message: e instanceof Error ? e.stack ?? e.message : String(e) };
}

export function deserializeError(s: SerializedError): TsrunError {
  return new TsrunError(s.code, s.message, { hint: s.hint });
}
