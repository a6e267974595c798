import type { Command } from 'commander';
import { defaultSpec } from '../spec/defaults.js';

export function registerSpec(program: Command): void {
  program
    .command('spec')
    .description('print a default OCI runtime config.json (for a bundle with ./rootfs)')
    .action(() => {
      process.stdout.write(JSON.stringify(defaultSpec(), null, 2) + '\n');
    });
}
