import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores here: two test files at a time, each with its own schema and queues.
    maxWorkers: 2,
    allowOnly: false,
    reporters: ['default'],
  },
});
