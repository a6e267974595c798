// Finding the command the way execvp(3) and docker do, but inside the container's root
// and against the container's PATH (not tsrun's). Runs on the setup thread after
// pivot_root, so every path below is already a container path.
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import { TsrunError } from '../errors.js';
import { DEFAULT_PATH_ENV } from '../spec/defaults.js';

export function envPath(env: string[]): string {
  const found = env.find((e) => e.startsWith('PATH='));
  return (found ?? DEFAULT_PATH_ENV).slice(5);
}

function notFound(arg0: string, detail: string): TsrunError {
  return new TsrunError('EXEC_NOT_FOUND', `exec "${arg0}": ${detail}`, {
    hint: 'check the command name, or that the image contains it',
  });
}

export function resolveExecutable(arg0: string, env: string[], cwd: string): string {
  if (arg0.includes('/')) {
    const path = posix.resolve(cwd, arg0);
    let st;
    try {
      st = statSync(path);
    } catch {
      throw notFound(arg0, `stat ${arg0}: no such file or directory`);
    }
    if (st.isDirectory() || !(st.mode & 0o111)) {
      throw new TsrunError('EXEC_NOT_EXECUTABLE', `exec "${arg0}": permission denied`, { hint: `${arg0} is not an executable file` });
    }
    return path;
  }
  let sawNonExecutable = false;
  for (const dir of envPath(env).split(':')) {
    const path = posix.join(dir === '' ? '.' : posix.resolve(cwd, dir), arg0);
    try {
      const st = statSync(path);
      if (st.isFile() && st.mode & 0o111) return path;
      if (st.isFile()) sawNonExecutable = true;
    } catch {
      /* not in this PATH entry */
    }
  }
  if (sawNonExecutable) throw new TsrunError('EXEC_NOT_EXECUTABLE', `exec "${arg0}": permission denied`, { hint: 'the file is in $PATH but has no execute bit' });
  throw notFound(arg0, 'executable file not found in $PATH');
}
