import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs anywhere without root; `e2e` drives the built bin/tsrun as
// root against real kernels. e2e files run one at a time: they share the host's
// mount table, cgroups and network, and the leak checks compare host state.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          fileParallelism: false,
          // One retry: the e2e tests share a 2-core machine's kernel, cgroups and network
          // with everything else on it, and a timing race (in tsrun or in a test) must not
          // block a landing. A deterministic failure still fails; vitest marks a test that
          // needed its retry, and each one is a race to find (see the CI log).
          retry: 1,
          testTimeout: 60_000,
          hookTimeout: 120_000,
          globalSetup: ['test/e2e/global-setup.ts'],
        },
      },
    ],
  },
});
