/**
 * Runs the built `outbox-relay` command as ops would: a child process with
 * environment variables and flags, through the runner that bench and the demo
 * use too (scripts/process-runner.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runProcess, startProcess } from '../../scripts/process-runner.js';

/** The built CLI entry point (`npm test` builds it first). */
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function assertBuilt(): void {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it for you)`);
}

/** What a finished command printed and returned. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A clean environment: no inherited outbox settings, only what the test passes. */
function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LOG_LEVEL: 'warn',
  };
  return { ...base, ...env };
}

/** Runs the CLI to completion (killed after `timeoutMs`). */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<CliResult> {
  assertBuilt();
  return runProcess(process.execPath, [CLI, ...args], { env: environment(env), timeoutMs });
}

/** A long-running CLI process (e.g. `run`), with its output collected. */
export interface CliProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Starts the CLI in the background. */
export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  assertBuilt();
  const { child, output, exited } = startProcess(process.execPath, [CLI, ...args], {
    env: environment(env),
  });
  return { child, output, exited };
}

/** The first JSON log entry whose `msg` is `msg` in `output`, once the process has written it. */
export function loggedEntry(output: string, msg: string): Record<string, unknown> | undefined {
  for (const line of output.split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.msg === msg) return entry;
    } catch {
      // Not a JSON line.
    }
  }
  return undefined;
}
