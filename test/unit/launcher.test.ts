// earlyFailure: the cause of a gated child's early death wins over the symptom a later
// step saw (cgroup.procs ESRCH, say).
import { describe, expect, it } from 'vitest';
import { earlyFailure, type Launched } from '../../src/runtime/launcher.js';

const launched = (started: Promise<void>): Pick<Launched, 'started'> => ({ started });

describe('earlyFailure', () => {
  it('returns why the child could not start', async () => {
    const why = new Error('posix_spawn: open("exec.fifo"): ENOENT');
    const started = Promise.reject(why);
    started.catch(() => {});
    expect(await earlyFailure(launched(started))).toBe(why);
  });

  it('is null when the child started, or has not failed within the wait', async () => {
    expect(await earlyFailure(launched(Promise.resolve()))).toBeNull();
    expect(await earlyFailure(launched(new Promise(() => {})), 20)).toBeNull();
  });
});
