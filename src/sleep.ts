// A synchronous sleep. tsrun's runtime core is synchronous where the kernel calls are
// (a lock, a freezer state, a child appearing after posix_spawn); Atomics.wait on a
// private buffer blocks this thread for MS milliseconds without spinning.
const cell = new Int32Array(new SharedArrayBuffer(4));

export function sleepSync(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}
