import type { Command } from 'commander';
import { explain, findRunning, renderExplanation } from '../engine/explain.js';
import { resolvePaths } from '../runtime/state.js';
import type { GlobalOptions } from './main.js';

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .alias('inspect-namespaces')
    .description('show a running container as the kernel sees it, next to the host: namespaces, cgroups, mounts, capabilities, seccomp, uid maps')
    .option('--format <format>', 'text or json', 'text')
    .argument('<container>', 'container id or a unique prefix')
    .action((ref: string, o: { format: string }, cmd: Command) => {
      const p = resolvePaths(cmd.parent!.opts<GlobalOptions>().root);
      const { id, pid } = findRunning(p, ref);
      const e = explain(id, pid);
      process.stdout.write(o.format === 'json' ? JSON.stringify(e, null, 2) + '\n' : renderExplanation(e));
    });
}
