/** A logger that keeps every entry it is given, for tests that assert on what was logged. */
import type { Logger } from '../../src/log/logger.js';

/** One logged entry. */
export interface LoggedEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields?: Record<string, unknown>;
}

/** A logger and the entries it has received so far, oldest first. */
export function recordingLogger(): { logger: Logger; logged: LoggedEntry[] } {
  const logged: LoggedEntry[] = [];
  const record =
    (level: LoggedEntry['level']) => (message: string, fields?: Record<string, unknown>) => {
      logged.push({ level, message, ...(fields ? { fields } : {}) });
    };
  const logger: Logger = {
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
  };
  return { logger, logged };
}
