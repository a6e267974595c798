// OCI hooks (config.md "POSIX-platform Hooks"): each runs with the container's state
// JSON on stdin, in the runtime's namespaces, within its timeout. A failing
// prestart/createRuntime/createContainer/startContainer hook fails the operation; a
// failing poststart/poststop hook is only reported.
import { spawnSync } from 'node:child_process';
import { TsrunError } from '../errors.js';
import type { HookSpec, Spec } from '../spec/types.js';
import { tracer } from '../trace/tracer.js';
import type { Kernel } from '../linux/kernel.js';
import { withNamespacesOf } from '../namespaces/hop.js';

export type HookName = 'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop';

/**
 * Runs the `name` hooks. createContainer and startContainer hooks run "in the container
 * namespace" (config.md): give `inside` (the kernel and the container's pid) and they
 * are started from the main thread while it visits the container's namespaces.
 */
export function runHooks(spec: Spec, name: HookName, state: object, inside?: { k: Kernel; pid: number }): void {
  const hooks: HookSpec[] = spec.hooks?.[name] ?? [];
  if (hooks.length === 0) return;
  if (inside && (name === 'createContainer' || name === 'startContainer')) {
    // config.md: a createContainer hook's path resolves in the runtime namespace (so
    // the host's mount namespace stays), a startContainer hook's in the container's.
    const types = (spec.linux?.namespaces ?? []).map((n) => n.type).filter((t) => t !== 'user' && (t !== 'mount' || name === 'startContainer'));
    withNamespacesOf(inside.k, inside.pid, types, () => runEach(name, hooks, state));
    return;
  }
  runEach(name, hooks, state);
}

function runEach(name: HookName, hooks: HookSpec[], state: object): void {
  const input = JSON.stringify(state);
  for (const h of hooks) {
    const t0 = tracer.on ? tracer.now() : undefined;
    const r = spawnSync(h.path, (h.args ?? [h.path]).slice(1), {
      argv0: h.args?.[0] ?? h.path,
      input,
      env: Object.fromEntries((h.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
      timeout: h.timeout ? h.timeout * 1000 : undefined,
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    // A hook need not read the state it is given: EPIPE on its stdin is not a failure,
    // its exit status is what counts.
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    const writeError = code === 'EPIPE' ? undefined : r.error;
    const failed = code === 'ETIMEDOUT' ? `killed after its timeout of ${h.timeout}s` : writeError ? writeError.message : r.status !== 0 ? (r.signal ? `killed by ${r.signal}${h.timeout ? ` (timeout ${h.timeout}s)` : ''}` : `exit status ${r.status}`) : null;
    tracer.step('step', `hook ${name}`, h.path, `run the ${name} hook with the container state on stdin`, t0, failed ?? 'ok');
    if (failed) {
      const err = new TsrunError('CONTAINER_SETUP', `${name} hook ${h.path} failed: ${failed}`);
      if (name === 'poststart' || name === 'poststop') process.stderr.write(`tsrun: warning: ${err.message}\n`);
      else throw err;
    }
  }
}
