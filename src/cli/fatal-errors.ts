/**
 * What the process does with an error nothing handled: an unhandled promise
 * rejection or an uncaught exception. Carrying on would leave the relay in a
 * state nobody planned for (a loop that died, a chain that never settles), so
 * the error is logged with its cause chain, the command's own bounded
 * shutdown runs (the one SIGTERM runs: stop claiming, wait for confirms,
 * release the tenant leases), and the process exits 1 for the orchestrator to
 * restart it. If the shutdown does not finish within its limit, or the
 * command has none, the process exits 1 at once.
 */
import type { Logger } from '../log/logger.js';

/** What an unhandled error was. */
export type FatalKind = 'unhandled rejection' | 'uncaught exception';

/** What {@link fatalErrorHandler} needs from the process. */
export interface FatalErrorOptions {
  /** The process's logger as it is when the error happens. */
  logger: () => Logger;
  /** Starts the running command's bounded shutdown; false if it has none. */
  shutdown: () => boolean;
  /** How long that shutdown may take before the process exits anyway. */
  limitMs: () => number;
  /** Ends the process (process.exit). */
  exit: (code: number) => void;
}

/** The handler to install for both events, and whether an error was fatal. */
export interface FatalErrorHandler {
  handle(kind: FatalKind, error: unknown): void;
  /** True once an error was handled: the process must exit 1 whatever the command returns. */
  fatal(): boolean;
}

/** Exit code after an unhandled error (a runtime failure). */
export const FATAL_EXIT_CODE = 1;

/** Builds the handler; see the module comment. */
export function fatalErrorHandler(options: FatalErrorOptions): FatalErrorHandler {
  let fatal = false;
  return {
    fatal: () => fatal,
    handle(kind, error) {
      const log = options.logger();
      if (fatal) {
        // Already shutting down because of an earlier one: record it, nothing more.
        log.error(`${kind} while shutting down`, { error });
        return;
      }
      fatal = true;
      const limitMs = options.limitMs();
      log.error(`${kind}: shutting down, then exiting ${FATAL_EXIT_CODE}`, { error, limitMs });
      const timer = setTimeout(() => {
        options
          .logger()
          .error('shutdown after an unhandled error did not finish in time; exiting', { limitMs });
        options.exit(FATAL_EXIT_CODE);
      }, limitMs);
      // Not unref'd: it must fire even if the shutdown waits on nothing that keeps the loop alive.
      if (!options.shutdown()) {
        clearTimeout(timer);
        options.exit(FATAL_EXIT_CODE);
      }
    },
  };
}
