// The README's walkthrough quotes a real `tsrun --trace run` and must not go stale:
// every trace line it quotes has to appear, in the same order, in what tsrun prints
// today, modulo container ids, pids, fd numbers and paths.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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

/** Puts both sides in the same words: the README's paths are tsrun's defaults, the test's are its own TSRUN_ROOT. */
export function normalize(line: string, root: string, runRoot: string): string {
  return line
    .split(runRoot).join('<RUN>')
    .split(root).join('<ROOT>')
    .replace(/\bvt[a-z0-9]+\b/g, '<VETH>')
    // derived from the container's address, so its bytes vary with it
    .replace(/\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b/g, '<MAC>')
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
    // The README's command, on the image the install script makes: the busybox rootfs, imported.
    const tarball = join(sb.dir, 'busybox.tar');
    execFileSync('tar', ['-C', sb.rootfs(), '-cf', tarball, '.']);
    const imported = await sb.tsrun(['import', tarball, 'busybox']);
    expect(imported.exitCode, imported.stderr).toBe(0);
    const r = await sb.tsrun(['--trace', 'run', '--rm', 'busybox', 'echo', 'hello'], { env: { NO_COLOR: '1' } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe('hello\n');
    const printed = r.stderr.split('\n').map((l) => normalize(l, sb.root, join(sb.root, 'run')));
    // A quoted line may leave out the "# why" (trimmed for width); then only the call
    // and its result have to match.
    const callOnly = printed.map((l) => l.replace(/ # .*$/, ''));
    // Order is checked per thread: each thread's steps come in a fixed order, but the
    // main and setup threads run side by side, so how their lines interleave varies
    // with the machine's load.
    const at = new Map<string, number>();
    for (const q of quoted) {
      const want = normalize(q, '/var/lib/tsrun', '/run/tsrun');
      const thread = want.split(' ')[0]!;
      const from = at.get(thread) ?? 0;
      // Every line starts with its thread's name, so a match is on the same thread.
      const found = (want.includes(' # ') ? printed : callOnly).indexOf(want, from);
      expect(found, `README line not printed by tsrun (in this order on the ${thread} thread):\n  ${want}\nnear:\n  ${printed.slice(from, from + 5).join('\n  ')}`).toBeGreaterThanOrEqual(0);
      at.set(thread, found + 1);
    }
  });
});
