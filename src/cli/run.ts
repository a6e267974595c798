import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { TsrunError } from '../errors.js';
import { specFromFlags, type RunFlags } from '../engine/run-spec.js';
import { LinuxKernel } from '../linux/libc.js';
import { addLifecycleRunOptions, runContainer, type LifecycleRunFlags } from './lifecycle.js';
import { newId, resolvePaths } from '../runtime/state.js';
import { requireRoot } from '../runtime/run.js';
import { validateSpec } from '../spec/validate.js';
import type { GlobalOptions } from './main.js';
import { addImageRunOptions } from './image.js';
import { prepareImageRun, type ImageRunOptions } from '../engine/image-run.js';
import type { OverlayLayers } from '../overlay/mount.js';
import { addNetworkOptions, applyNetworkFlags, type NetworkFlags } from './network.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface RunCliOptions extends RunFlags {
  rootfs?: string;
  bundle?: string;
  name?: string;
  rm: boolean;
}

function loadBundle(dir: string): { spec: ReturnType<typeof validateSpec>; rootfs: string } {
  let text: string;
  try {
    text = readFileSync(join(dir, 'config.json'), 'utf8');
  } catch (e) {
    throw new TsrunError('SPEC_INVALID', `cannot read ${join(dir, 'config.json')}: ${(e as Error).message}`, { hint: 'create one with: tsrun spec > config.json' });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TsrunError('SPEC_INVALID', `invalid OCI spec: ${join(dir, 'config.json')} is not valid JSON: ${(e as Error).message}`);
  }
  const spec = validateSpec(raw);
  if (!spec.process) throw new TsrunError('SPEC_INVALID', 'invalid OCI spec: process: required to run a container');
  return { spec, rootfs: resolve(dir, spec.root?.path ?? 'rootfs') };
}

function checkRootfs(rootfs: string): void {
  let ok = false;
  try {
    ok = statSync(rootfs).isDirectory();
  } catch {
    /* missing */
  }
  if (!ok) throw new TsrunError('ROOTFS', `rootfs "${rootfs}" is not a directory`, { hint: 'give --rootfs a directory holding the container\'s filesystem' });
}

/** `run`, and `create`: the same flags and the same work, stopping after the record. */
export function registerRun(program: Command): void {
  defineRun(program, 'run', 'run a command in a new container', false);
  defineRun(program, 'create', 'create a container without starting it (takes run\'s flags); prints its ID', true);
}

function defineRun(program: Command, name: string, description: string, createOnly: boolean): void {
  addNetworkOptions(addLifecycleRunOptions(addImageRunOptions(program
    .command(name)
    .description(description)
    .usage('[options] IMAGE [COMMAND [ARG...]]  |  --rootfs DIR [options] [--] COMMAND [ARG...]  |  --bundle DIR')
    .passThroughOptions()
    .argument('[command...]', 'the command and its arguments')
    .option('--rootfs <dir>', 'run on this root filesystem directory')
    .option('--bundle <dir>', 'run an OCI bundle (config.json plus its rootfs)')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable', collect, [])
    .option('--env-file <file>', 'read environment variables from a file', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <uid[:gid]>', 'user to run as')
    .option('-h, --hostname <name>', 'container hostname')
    .option('-i, --interactive', 'keep stdin open and pass it to the container', false)
    .option('-t, --tty', 'allocate a pseudo-terminal', false)
    .option('--rm', 'remove the container when it exits', false)
    .option('--read-only', 'mount the container\'s root filesystem read-only', false)
    .option('-v, --volume <host:ctr[:ro]>', 'bind mount a host path', collect, [])
    .option('--tmpfs <path[:opts]>', 'mount a tmpfs', collect, [])
    .option('--cap-add <cap>', 'add a capability', collect, [])
    .option('--cap-drop <cap>', 'drop a capability', collect, [])
    .option('--ulimit <name=soft[:hard]>', 'set a resource limit', collect, [])
    .option('--privileged', 'give the container every capability and unmask /proc', false)
    .option('--security-opt <opt>', 'seccomp=PROFILE.json, seccomp=unconfined or no-new-privileges', collect, [])
    .option('--device <host[:ctr][:rwm]>', 'add a host device to the container (and allow it in the device cgroup)', collect, [])
    .option('--name <name>', 'name the container'))))
    .action(async (command: string[], opts: RunCliOptions, cmd: Command) => {
      // Before anything is pulled, allocated or written: without root nothing can work,
      // and nothing may be left half-made.
      requireRoot();
      const globals = cmd.parent!.opts<GlobalOptions>();
      const paths = resolvePaths(globals.root);
      const id = newId();
      let spec;
      let rootfs: string;
      let bundle: string;
      let overlay: OverlayLayers | undefined;
      let cleanup: (() => void) | undefined;
      if (opts.bundle) {
        bundle = resolve(opts.bundle);
        ({ spec, rootfs } = loadBundle(bundle));
      } else if (opts.rootfs) {
        rootfs = resolve(opts.rootfs);
        bundle = process.cwd();
        spec = validateSpec(specFromFlags({ ...opts, readOnly: (opts as unknown as { readOnly: boolean }).readOnly }, command, { id }));
      } else {
        const [image, ...rest] = command;
        if (!image) throw new TsrunError('USAGE', 'run needs an IMAGE, --rootfs DIR or --bundle DIR', { hint: 'tsrun run busybox echo hello' });
        const prep = await prepareImageRun(paths.root, id, image, rest, opts as unknown as ImageRunOptions);
        if (opts.rm) cleanup = prep.cleanup;
        try {
          rootfs = prep.rootfs;
          overlay = prep.overlay;
          bundle = process.cwd();
          spec = validateSpec(specFromFlags({ ...opts, user: prep.user, readOnly: (opts as unknown as { readOnly: boolean }).readOnly }, [], { id, image: prep.image }));
        } catch (e) {
          prep.cleanup();
          throw e;
        }
      }
      try {
        checkRootfs(rootfs);
        // networking (issue 7): --network, -p, --dns...: spec edits now, attached at launch
        if (!opts.bundle) await applyNetworkFlags(spec, opts as unknown as NetworkFlags, { paths, id, name: opts.name, image: opts.rootfs ? undefined : command[0] });
        // lifecycle (issue 5): a record for ps/inspect/rm; -d hands the container to the monitor.
        process.exitCode = await runContainer(new LinuxKernel(), {
          id, spec, rootfs, bundle, paths, overlay, interactive: opts.interactive || !!opts.bundle,
          source: opts.rootfs ?? opts.bundle ?? command[0]!, opts: opts as unknown as LifecycleRunFlags, rootFlag: globals.root, cleanup, createOnly,
        });
      } catch (e) {
        cleanup?.();
        throw e;
      }
    });
}
