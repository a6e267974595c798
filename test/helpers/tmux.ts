// Driving an interactive program the way a person would: in a real terminal (a tmux
// pane), typing keys and reading the screen. Each session uses its own server socket
// inside the test's temp dir, so it is isolated from other tests and from any user's
// tmux, and the leak checker sees the server if it is not killed.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function haveTmux(): boolean {
  return ['/usr/bin/tmux', '/bin/tmux'].some((p) => existsSync(p));
}

export class TmuxSession {
  private constructor(
    readonly socket: string,
    readonly name: string,
  ) {}

  /** Starts a detached session of cols x rows running `command` (a shell command line). */
  static start(socket: string, command: string, size = { cols: 100, rows: 30 }, name = 'e2e'): TmuxSession {
    const s = new TmuxSession(socket, name);
    // -f /dev/null: no user config; status off: the pane is the whole window.
    s.tmux('-f', '/dev/null', 'new-session', '-d', '-s', name, '-x', String(size.cols), '-y', String(size.rows), command);
    s.tmux('set-option', '-t', name, 'status', 'off');
    s.tmux('set-option', '-t', name, 'remain-on-exit', 'on');
    return s;
  }

  tmux(...args: string[]): string {
    return execFileSync('tmux', ['-S', this.socket, ...args], { encoding: 'utf8', env: { ...process.env, TMUX: '' } });
  }

  /** Types literal text (no key names), then optionally Enter. */
  type(text: string, enter = true): void {
    this.tmux('send-keys', '-t', this.name, '-l', text);
    if (enter) this.tmux('send-keys', '-t', this.name, 'Enter');
  }

  /** Sends key names: 'C-c', 'Enter', ... */
  keys(...keys: string[]): void {
    this.tmux('send-keys', '-t', this.name, ...keys);
  }

  /** The screen plus scrollback, trailing blanks trimmed. */
  screen(): string {
    return this.tmux('capture-pane', '-p', '-J', '-S', '-500', '-t', this.name).replace(/\s+$/, '');
  }

  paneSize(): { cols: number; rows: number } {
    const [rows, cols] = this.tmux('display-message', '-p', '-t', this.name, '#{pane_height} #{pane_width}').trim().split(' ').map(Number);
    return { cols: cols!, rows: rows! };
  }

  resize(cols: number, rows: number): void {
    this.tmux('resize-window', '-t', this.name, '-x', String(cols), '-y', String(rows));
  }

  /** Polls the screen until `re` matches; returns the match. Throws with the screen on timeout. */
  async waitFor(re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      last = this.screen();
      const m = last.match(re);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} in the tmux pane; screen:\n${last}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  kill(): void {
    try {
      this.tmux('kill-server');
    } catch {
      /* already gone */
    }
  }
}
