import { defineConfig } from 'vitest/config';

/**
 * Tests that change a server's state for everyone on it (a broker-wide memory
 * alarm, a PostgreSQL restart) run only when OUTBOX_TEST_OWN_SERVERS=1 says
 * this run may own those servers; CI sets it. Without it they are not
 * collected at all (see README, "Tests").
 */
const ownsServers = process.env.OUTBOX_TEST_OWN_SERVERS === '1';

/**
 * Finds (or starts) PostgreSQL and RabbitMQ. Only the projects that use them
 * name it: the unit project must run, and fail or pass on its own merits,
 * with neither reachable.
 */
const services = ['test/global-setup.ts'];

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores here: two test files at a time, each with its own schema and queues.
    maxWorkers: 2,
    allowOnly: false,
    reporters: ['default'],
    projects: [
      {
        // Pure logic, no services, seconds: `npm run test:unit`.
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 10_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'parallel',
          globalSetup: services,
          include: ['test/**/*.test.ts'],
          exclude: ['test/unit/**', 'test/serial/**', 'test/fuzz/**'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Property-based fuzzing, seeded and bounded: a short pass in every
        // run, a long one with `npm run fuzz` (FUZZ_LONG=1).
        extends: true,
        test: {
          name: 'fuzz',
          globalSetup: services,
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
                globalSetup: services,
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
