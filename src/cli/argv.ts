// argv rewriting that must happen before commander sees the command line. Kept apart
// from main.ts because importing main.ts runs the CLI.

const TRACE_MODES = ['text', 'json', 'timing'];
/** Global options that take a separate value, so the next word is not the verb. */
const GLOBAL_WITH_VALUE = ['--root'];

/**
 * `--trace` takes an optional mode; commander would read the next word (`run`) as that
 * mode. Only text, json and timing are modes, so a bare --trace becomes --trace=text.
 * Only the global options (before the verb) are touched: everything after the verb
 * may be the container's own command line, which must reach it unchanged.
 * `argv` is process.argv: node and the script come first.
 */
export function normalizeArgv(argv: string[]): string[] {
  const out = argv.slice(0, 2);
  let i = 2;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--' || !a.startsWith('-')) break;
    if (a === '--trace' && !TRACE_MODES.includes(argv[i + 1] ?? '')) {
      out.push('--trace=text');
      continue;
    }
    out.push(a);
    if (GLOBAL_WITH_VALUE.includes(a) && i + 1 < argv.length) out.push(argv[++i]!);
  }
  return out.concat(argv.slice(i));
}
