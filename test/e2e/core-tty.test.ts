// Core runtime, `-it`: a real shell in a real terminal (a tmux pane), driven by keys
// the way a person would, and the caller's terminal restored afterwards.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useSandbox } from '../helpers/sandbox.js';
import { TSRUN_BIN } from '../helpers/tsrun.js';
import { TmuxSession, haveTmux } from '../helpers/tmux.js';

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

describe.skipIf(!haveTmux())('core: -it in a terminal', () => {
  const sb = useSandbox();

  /** A pane script: save the terminal settings, run tsrun, report its status, save them again. */
  function paneScript(tsrunArgs: string[]): string {
    const d = sb.dir;
    const script = [
      `stty -g > ${q(join(d, 'stty.before'))}`,
      `TSRUN_ROOT=${q(sb.root)} TMPDIR=${q(sb.tmp)} ${q(TSRUN_BIN)} ${tsrunArgs.map(q).join(' ')}`,
      'echo "TSRUN-EXIT=$?"',
      `stty -g > ${q(join(d, 'stty.after'))}`,
      // Keep the pane (and its terminal) alive for the last checks; killed with the server.
      'exec sleep 300',
    ].join('\n');
    return sb.writeFile('pane.sh', script + '\n', 0o755);
  }

  it('runs an interactive shell: prompt, tty, PID 1, Ctrl-C, window size, exit status, terminal restored', async () => {
    const script = paneScript(['run', '-it', '--rootfs', sb.rootfs(), '--', 'sh']);
    const t = TmuxSession.start(join(sb.dir, 'tmux.sock'), `sh ${q(script)}`, { cols: 100, rows: 30 });
    try {
      // The prompt: busybox ash prints "/ # " for root in /.
      await t.waitFor(/^\/ #$/m); // busybox ash: "/ # " for root in / (screen() trims the blank)

      t.type('tty | sed s/^/TTY=/');
      expect((await t.waitFor(/^TTY=(.*)$/m))[1]).toBe('/dev/pts/0');

      t.type('echo "PID=$$"');
      expect((await t.waitFor(/^PID=(\d+)$/m))[1]).toBe('1');

      // The container's pty has the pane's size, and follows it when it changes
      // (tsrun gets SIGWINCH and sets the pty's size with TIOCSWINSZ).
      const size = t.paneSize();
      t.type('echo "SIZE=$(stty size)"');
      expect((await t.waitFor(/^SIZE=(\d+ \d+)$/m))[1]).toBe(`${size.rows} ${size.cols}`);
      t.resize(90, 24);
      await new Promise((r) => setTimeout(r, 300));
      const resized = t.paneSize();
      expect(resized).toEqual({ cols: 90, rows: 24 });
      t.type('echo "RESIZED=$(stty size)"');
      expect((await t.waitFor(/^RESIZED=(\d+ \d+)$/m))[1]).toBe(`${resized.rows} ${resized.cols}`);

      // Ctrl-C goes through the pty's line discipline as SIGINT to the foreground job.
      t.type('sleep 100');
      await new Promise((r) => setTimeout(r, 500));
      t.keys('C-c');
      t.type('echo "AFTER=$((40+2))"');
      // Without the interrupt, AFTER would only come once sleep 100 ends: waitFor fails first.
      await t.waitFor(/^AFTER=42$/m, 10_000);

      t.type('exit 3');
      expect((await t.waitFor(/^TSRUN-EXIT=(\d+)$/m))[1]).toBe('3');
      // The pane script runs stty -g right after tsrun; wait for it, then compare:
      // raw mode and every other setting tsrun changed must be undone.
      const deadline = Date.now() + 5000;
      let after = '';
      while (Date.now() < deadline) {
        try {
          after = readFileSync(join(sb.dir, 'stty.after'), 'utf8');
          if (after) break;
        } catch {
          /* not yet */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      const before = readFileSync(join(sb.dir, 'stty.before'), 'utf8');
      expect(before).toMatch(/:/);
      expect(after).toBe(before);
    } finally {
      t.kill();
    }
  });

  it('-t without -i: output goes through a pty, stdin is not read, status is returned', async () => {
    const script = paneScript(['run', '-t', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'tty; test -t 0 && echo STDIN-IS-TTY; exit 4']);
    const t = TmuxSession.start(join(sb.dir, 'tmux.sock'), `sh ${q(script)}`);
    try {
      expect((await t.waitFor(/^TSRUN-EXIT=(\d+)$/m))[1]).toBe('4');
      expect(t.screen()).toMatch(/^\/dev\/pts\/0$/m);
      await new Promise((r) => setTimeout(r, 200));
      expect(readFileSync(join(sb.dir, 'stty.after'), 'utf8')).toBe(readFileSync(join(sb.dir, 'stty.before'), 'utf8'));
    } finally {
      t.kill();
    }
  });

  it('without -t, a container started from a terminal sees no terminal', async () => {
    const script = paneScript(['run', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'tty; echo "NOTTY=$?"']);
    const t = TmuxSession.start(join(sb.dir, 'tmux.sock'), `sh ${q(script)}`);
    try {
      await t.waitFor(/^TSRUN-EXIT=\d+$/m);
      // stdin is /dev/null without -i; stdout is the pane's tty, so only fd 0 is asked.
      expect(t.screen()).toMatch(/^not a tty$/m);
      expect(t.screen()).toMatch(/^NOTTY=1$/m);
    } finally {
      t.kill();
    }
  });
});
