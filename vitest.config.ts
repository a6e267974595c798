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
          testTimeout: 60_000,
          hookTimeout: 120_000,
          globalSetup: ['test/e2e/global-setup.ts'],
        },
      },
    ],
  },
});
