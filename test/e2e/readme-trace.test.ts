// The README's walkthrough quotes a real `tsrun --trace run` and must not go stale:
// every trace line it quotes has to appear, in the same order, in what tsrun prints
// today, modulo container ids, pids, fd numbers and paths.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { useSandbox } from '../helpers/sandbox.js';
import { REPO_ROOT } from '../helpers/tsrun.js';

/** Trace lines quoted in the README section, with wrapped "# why" continuations joined. */
export function readmeTraceLines(readme: string): string[] {
  const start = readme.indexOf('## What happens when you run a container');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const lines: string[] = [];
  for (const block of section.split('```').filter((_, i) => i % 2 === 1)) {
    for (const raw of block.split('\n')) {
      if (/^(setup|main) +(syscall|step|cgroup|net|image) /.test(raw)) lines.push(raw);
      else if (/^\s+# /.test(raw) && lines.length) lines[lines.length - 1] += ' ' + raw.trim();
    }
  }
  return lines;
}

export function normalize(line: string, rootfs: string): string {
  return line
    .split(rootfs).join('<ROOTFS>')
    .replace(/"[^"]*exec\.fifo"/g, '"<GATE>"')
    .replace(/"[^"]*\/containers\/[0-9a-f]{64}"/g, '"<STATEDIR>"')
    .replace(/\b[0-9a-f]{12,64}\b/g, '<ID>')
    .replace(/\b\d+\b/g, '<N>')
    .replace(/\s+/g, ' ')
    .trim();
}

describe('README walkthrough', () => {
  const sb = useSandbox();

  it('quotes only trace lines that tsrun still prints, in order', async () => {
    const quoted = readmeTraceLines(readFileSync(`${REPO_ROOT}/README.md`, 'utf8'));
    expect(quoted.length).toBeGreaterThan(20);
    const rootfs = sb.rootfs();
    const r = await sb.tsrun(['--trace', 'run', '--rootfs', rootfs, '--', 'echo', 'hello'], { env: { NO_COLOR: '1' } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe('hello\n');
    const printed = r.stderr.split('\n').map((l) => normalize(l, rootfs));
    // A quoted line may leave out the "# why" (trimmed for width); then only the call
    // and its result have to match.
    const callOnly = printed.map((l) => l.replace(/ # .*$/, ''));
    let at = 0;
    for (const q of quoted) {
      const want = normalize(q, '/var/lib/tsrun/rootfs/busybox');
      const found = (want.includes(' # ') ? printed : callOnly).indexOf(want, at);
      expect(found, `README line not printed by tsrun (in this order):\n  ${want}\nnear:\n  ${printed.slice(at, at + 5).join('\n  ')}`).toBeGreaterThanOrEqual(0);
      at = found + 1;
    }
  });
});
