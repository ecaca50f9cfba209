/**
 * Seeds and budgets of the property-based fuzz suite (test/fuzz/), read once
 * from the environment:
 *
 * - FUZZ_SEED: the fast-check seed (an integer). Default: a fixed seed, so the
 *   short pass that runs with every `npm test` is reproducible; with
 *   FUZZ_LONG=1, a random seed, printed.
 * - FUZZ_PATH: replays one counterexample of FUZZ_SEED (the `path` fast-check
 *   prints on failure) and resumes its shrinking.
 * - FUZZ_LONG=1 (`npm run fuzz`): run until FUZZ_SECONDS (default 600) have
 *   passed, per test file; the two files run side by side. Without it, a short
 *   pass of a few runs per property.
 *
 * A failure prints fast-check's report (seed, path, shrunk counterexample,
 * error) and the command that replays it.
 */
import fc from 'fast-check';

/** The default seed of the short pass. */
const FIXED_SEED = 20_240_611;

/** The fuzz settings of this process. */
export interface FuzzSettings {
  seed: number;
  path: string | undefined;
  long: boolean;
  /** Time budget of one test file in the long pass. */
  longBudgetMs: number;
}

function integerVariable(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  if (!/^-?\d+$/.test(text.trim()))
    throw new Error(`invalid ${name}: expected an integer, got '${text}'`);
  return Number(text.trim());
}

/** Parses the FUZZ_* variables. */
export function fuzzSettings(env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const long = env.FUZZ_LONG === '1' || env.FUZZ_LONG === 'true';
  const given = integerVariable(env, 'FUZZ_SEED');
  // A 32-bit integer, as fast-check prints seeds.
  const seed = given ?? (long ? (Math.random() * 2 ** 32) | 0 : FIXED_SEED);
  const path = env.FUZZ_PATH?.trim() || undefined;
  if (path !== undefined && given === undefined) {
    throw new Error('FUZZ_PATH replays a counterexample of one seed: set FUZZ_SEED too');
  }
  if (path !== undefined && !/^\d+(:\d+)*$/.test(path)) {
    throw new Error(`invalid FUZZ_PATH: expected fast-check's path (e.g. 12:0:3), got '${path}'`);
  }
  const seconds = integerVariable(env, 'FUZZ_SECONDS') ?? 600;
  if (seconds < 1) throw new Error(`invalid FUZZ_SECONDS: expected a positive integer`);
  return { seed, path, long, longBudgetMs: seconds * 1000 };
}

/** How a test file's property runs in the short pass (the long pass has the file's whole budget). */
export interface FuzzBudget {
  /** Test file, for the replay command. */
  file: string;
  /** Runs in the short pass. */
  shortRuns: number;
  /** Time cap of the short pass, shrinking included. */
  shortMs: number;
}

/** fast-check parameters for one property, plus the vitest timeout that fits them. */
export function fuzzParameters<T>(
  settings: FuzzSettings,
  budget: FuzzBudget,
): { parameters: fc.Parameters<T>; timeLimitMs: number; testTimeoutMs: number } {
  const timeLimitMs = settings.long ? settings.longBudgetMs : budget.shortMs;
  const numRuns = settings.long ? Number.MAX_SAFE_INTEGER : budget.shortRuns;
  const replay = `FUZZ_SEED=${settings.seed} FUZZ_PATH=<path> npm run fuzz -- ${budget.file}`;
  console.log(
    `[fuzz] ${budget.file}: seed ${settings.seed}${settings.path ? `, path ${settings.path}` : ''}, ` +
      `${settings.long ? 'long' : 'short'} pass, at most ${Math.round(timeLimitMs / 1000)} s` +
      `${settings.long ? '' : ` or ${numRuns} runs`}`,
  );
  return {
    timeLimitMs,
    // The last run may still be settling when the time limit interrupts it.
    testTimeoutMs: timeLimitMs + 120_000,
    parameters: {
      seed: settings.seed,
      ...(settings.path ? { path: settings.path } : {}),
      numRuns,
      // Interrupts generation and shrinking alike; an interrupted shrink still
      // reports its smallest counterexample so far, and FUZZ_PATH resumes it.
      plugins: [fc.interruptAfterTimeLimit(timeLimitMs)],
      reporter(details) {
        if (!details.failed) return;
        if (details.counterexample === null) {
          throw new Error(
            `${budget.file}: no run finished within the time limit of ${timeLimitMs} ms ` +
              `(seed ${settings.seed}); a run that never settles is itself a failure: replay with ` +
              `FUZZ_SEED=${settings.seed} npm run fuzz -- ${budget.file}`,
          );
        }
        const report = fc.defaultReportMessage(details);
        const path = details.counterexamplePath ?? '<path above>';
        const error = details.errorInstance;
        const got = error instanceof Error ? error.message : String(error);
        throw new Error(
          `${report}\n\nGot error: ${got}\n\nReplay: ${replay.replace('<path>', path)}` +
            (details.interrupted
              ? '\n(shrinking was cut by the time limit; replaying resumes it)'
              : ''),
          { cause: error },
        );
      },
    },
  };
}
