import { defineConfig } from 'vitest/config';

/**
 * Tests that change a server's state for everyone on it (a broker-wide memory
 * alarm, a PostgreSQL restart) run only when OUTBOX_TEST_OWN_SERVERS=1 says
 * this run may own those servers; CI sets it. Without it they are not
 * collected at all (see README, "Tests").
 */
const ownsServers = process.env.OUTBOX_TEST_OWN_SERVERS === '1';

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
          exclude: ['test/serial/**', 'test/fuzz/**'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Property-based fuzzing, seeded and bounded: a short pass in every
        // run, a long one with `npm run fuzz` (FUZZ_LONG=1).
        extends: true,
        test: {
          name: 'fuzz',
          include: ['test/fuzz/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      ...(ownsServers
        ? [
            {
              // Tests that change broker-wide or cluster-wide state: they run
              // after all others, one file at a time.
              extends: true as const,
              test: {
                name: 'serial',
                include: ['test/serial/**/*.test.ts'],
                fileParallelism: false,
                sequence: { groupOrder: 1 },
              },
            },
          ]
        : []),
    ],
  },
});
