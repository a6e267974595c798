// The tsrun command line. This is the only layer that parses argv, prints, and picks
// exit codes: 125 for tsrun's own errors, 126/127 for a command that cannot be run,
// otherwise the container's own status.
import { Command, Option } from 'commander';
import { TsrunError } from '../errors.js';
import { parseTraceMode, tracer } from '../trace/tracer.js';
import { normalizeArgv } from './argv.js';
import { registerRun } from './run.js';
import { retireUnusedWorker } from '../runtime/launcher.js';
import { registerSpec } from './spec.js';
import { registerExplain } from './explain.js';
import { registerCgroupVerbs } from './cgroup-verbs.js';
import { registerImage } from './image.js';
import { registerArchive } from './archive.js';
import { registerNetwork } from './network.js';
import { registerLifecycle } from './lifecycle.js';

export interface GlobalOptions {
  root?: string;
  trace?: string | boolean;
  debug?: boolean;
}

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}
export { collect };
export { normalizeArgv };

export function printError(e: unknown, debug = false): number {
  if (e instanceof TsrunError) {
    process.stderr.write(`tsrun: ${e.message}\n`);
    if (e.hint) process.stderr.write(`hint: ${e.hint}\n`);
    if (debug && e.cause instanceof Error) process.stderr.write(`cause: ${e.cause.stack}\n`);
    return e.exitCode;
  }
  process.stderr.write(`tsrun: internal error: ${e instanceof Error ? (debug ? e.stack : e.message) : String(e)}\n`);
  return 125;
}

export function buildProgram(): Command {
  const program = new Command('tsrun')
    .description('a container runtime and engine written in TypeScript')
    .version('0.1.0')
    .enablePositionalOptions()
    .showHelpAfterError()
    .option('--root <dir>', 'state directory (default /var/lib/tsrun and /run/tsrun; env TSRUN_ROOT)')
    .addOption(new Option('--trace [mode]', 'narrate every kernel step on stderr: text, json or timing').preset('text'))
    .option('--debug', 'print stack traces with errors')
    .hook('preAction', (cmd) => {
      const opts = cmd.opts<GlobalOptions>();
      tracer.configure(parseTraceMode(opts.trace), { color: process.stderr.isTTY === true && opts.trace !== 'json' });
    });
  program.exitOverride((err) => {
    // commander's own usage errors: docker exits 125 for those too.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
    process.exit(125);
  });
  registerRun(program); // run and create
  registerSpec(program);
  registerExplain(program);
  registerCgroupVerbs(program); // after registerRun: it adds the resource flags of run and create
  registerImage(program);
  registerArchive(program);
  registerNetwork(program); // networking (issue 7): network create|ls|inspect|rm|connect|disconnect|prune, port
  registerLifecycle(program); // lifecycle (issue 5): start, ps, logs, exec, stop, ...
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(normalizeArgv(process.argv));
  } catch (e) {
    process.exitCode = printError(e, program.opts<GlobalOptions>().debug);
  } finally {
    await retireUnusedWorker();
  }
}

void main();
