'use strict';
// The setup thread's entry when bin/load-bundle.cjs starts it early: wait until the
// main thread has loaded koffi (see there), then run dist/setup-worker.cjs through the
// V8 code cache like the main bundle.
const path = require('path');
const wt = require('worker_threads');
const gate = wt.workerData && wt.workerData.koffiGate;
// The setup bundle takes a non-null workerData for a plan given at start; its plan
// comes by message here.
wt.workerData = null;
// 10 s: should the main thread die before it says so, go on rather than hang.
if (gate) Atomics.wait(new Int32Array(gate), 0, 0, 10_000);
const file = path.join(__dirname, '../dist/setup-worker.cjs');
require('./load-bundle.cjs').runCached(file, `${file}.v8cache`, 'now');
