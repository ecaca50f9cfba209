import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores here: two test files at a time, each with its own schema and queues.
    maxWorkers: 2,
    allowOnly: false,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'parallel',
          include: ['test/**/*.test.ts'],
          exclude: ['test/serial/**'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Tests that change broker-wide state (a memory alarm blocks every
        // publisher): they run after all others, one file at a time.
        extends: true,
        test: {
          name: 'serial',
          include: ['test/serial/**/*.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
