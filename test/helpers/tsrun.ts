// Runs the built bin/tsrun (the real CLI, as a user would) with an isolated state dir.
import { fileURLToPath } from 'node:url';
import { execa, type Options, type ResultPromise } from 'execa';

/** The repository root and the CLI entry the tests drive. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const TSRUN_BIN = `${REPO_ROOT}/bin/tsrun`;

export interface TsrunOptions {
  /** TSRUN_ROOT for this run: keep every test's state apart from the host's and each other's */
  root: string;
  /** TMPDIR for tsrun: anything tsrun puts in a temp dir lands where the leak checker looks */
  tmpdir?: string;
  /** written to tsrun's stdin, which is then closed; without it stdin is /dev/null. A string is sent as UTF-8. */
  input?: string | Uint8Array;
  /** extra environment for tsrun (on top of this process's) */
  env?: Record<string, string | undefined>;
  /** kill tsrun after this long (SIGTERM, then SIGKILL 2 s later); default 30 s */
  timeoutMs?: number;
  /** run tsrun under this wrapper, e.g. ['setpriv', '--reuid', '65534', ...] */
  wrapper?: string[];
  /** how many extra pipes to give tsrun beyond 0-2 (fds 3, 4, ...): fd-leak tests */
  extraFds?: number;
  cwd?: string;
}

export interface TsrunResult {
  stdout: string;
  stderr: string;
  /** tsrun's exit status; undefined when it was killed by a signal */
  exitCode: number | undefined;
  /** the signal that killed tsrun itself, if any */
  signal: string | undefined;
  timedOut: boolean;
  /** the command line, for failure messages */
  command: string;
}

function execaOptions(o: TsrunOptions, stdin: 'pipe' | 'ignore' = o.input !== undefined ? 'pipe' : 'ignore'): Options {
  const stdio: Array<'pipe' | 'ignore'> = [stdin, 'pipe', 'pipe'];
  for (let i = 0; i < (o.extraFds ?? 0); i++) stdio.push('pipe');
  return {
    reject: false,
    // execa types a stdio array as a fixed tuple; the length here is only known at run time.
    stdio: stdio as unknown as Options['stdio'],
    ...(o.input !== undefined ? { input: o.input } : {}),
    env: { TSRUN_ROOT: o.root, ...(o.tmpdir ? { TMPDIR: o.tmpdir } : {}), ...o.env },
    extendEnv: true,
    timeout: o.timeoutMs ?? 30_000,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: 2000,
    stripFinalNewline: false,
    cwd: o.cwd ?? REPO_ROOT,
  };
}

function argv(args: string[], o: TsrunOptions): [string, string[]] {
  if (o.wrapper?.length) return [o.wrapper[0]!, [...o.wrapper.slice(1), TSRUN_BIN, ...args]];
  return [TSRUN_BIN, args];
}

/** Runs `tsrun ARGS...` to completion and returns its output and exit status. Never throws on failure. */
export async function runTsrun(args: string[], o: TsrunOptions): Promise<TsrunResult> {
  const [file, fargs] = argv(args, o);
  const r = await execa(file, fargs, execaOptions(o));
  return {
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    exitCode: r.exitCode,
    signal: r.signal,
    timedOut: r.timedOut === true,
    command: [file, ...fargs].join(' '),
  };
}

/**
 * Starts `tsrun ARGS...` in the background: for tests that signal it or talk to it
 * while it runs. Await the returned subprocess (it does not reject) for the result.
 */
export function spawnTsrun(args: string[], o: TsrunOptions & { stdin?: 'pipe' | 'ignore' }): ResultPromise<Options> {
  const [file, fargs] = argv(args, o);
  return execa(file, fargs, { ...execaOptions(o, o.stdin ?? 'ignore'), buffer: true });
}

/** Resolves with all of stdout so far once it matches `re`; rejects after `timeoutMs`. */
export function waitForOutput(sub: ResultPromise<Options>, re: RegExp, timeoutMs = 15_000, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  const s = sub[stream];
  if (!s) return Promise.reject(new Error(`${stream} is not a pipe`));
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => {
      s.off('data', onData);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} on ${stream}; got: ${JSON.stringify(seen)}`));
    }, timeoutMs);
    const onData = (chunk: Buffer | string): void => {
      seen += chunk.toString();
      if (re.test(seen)) {
        clearTimeout(timer);
        s.off('data', onData);
        resolve(seen);
      }
    };
    s.on('data', onData);
    void sub.then(() => {
      if (!re.test(seen)) {
        clearTimeout(timer);
        reject(new Error(`tsrun exited before ${re} appeared on ${stream}; got: ${JSON.stringify(seen)}`));
      }
    });
  });
}
