/**
 * The one way tests, benchmarks and the demo run a child process (usually the
 * built `outbox-relay`): spawn it with exactly the environment given, collect
 * or pass through its output, wait for a line it prints, stop it (SIGTERM,
 * then SIGKILL if asked to and it outlives a grace period) and read its exit
 * code.
 *
 * It lives in scripts/, beside the demo, because test/, bench/ and scripts/
 * all import it; src/ never does (the relay does not spawn processes).
 *
 * `exited` resolves on 'close', not 'exit': by then the process's output
 * streams have ended, so everything it printed has been collected.
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** What becomes of one output stream: kept for `output()` and line waits, passed to ours, or dropped. */
export type OutputMode = 'collect' | 'inherit' | 'ignore';

/** How to start a process. */
export interface StartOptions {
  /** The child's whole environment: nothing is inherited unless passed here. */
  env: NodeJS.ProcessEnv;
  /** Default 'collect'. */
  stdout?: OutputMode;
  /** Default 'collect'. */
  stderr?: OutputMode;
}

/** Which stream a line came from. */
export type StreamName = 'stdout' | 'stderr';

/** A started process; see the module comment. */
export interface RunningProcess {
  readonly child: ChildProcess;
  /** The process id (-1 if it could not be spawned). */
  readonly pid: number;
  /** Resolves with the exit code (null after a signal) once the process and its streams have ended. */
  readonly exited: Promise<number | null>;
  /** The collected stdout and stderr so far, interleaved as they arrived. */
  output(): string;
  /** The collected stdout so far. */
  stdout(): string;
  /** The collected stderr so far. */
  stderr(): string;
  /** Whether it has neither exited nor been killed by a signal. */
  running(): boolean;
  /** Calls `listener` with each complete line of the collected streams from now on. */
  onLine(listener: (line: string, stream: StreamName) => void): void;
  /**
   * Resolves with the first collected line (already printed or to come) that
   * `match` accepts; rejects if the process ends first or after `timeoutMs`.
   */
  waitForLine(
    match: string | RegExp | ((line: string) => boolean),
    timeoutMs: number,
  ): Promise<string>;
  /**
   * Sends SIGTERM unless it has ended, and SIGKILL after `killAfterMs` if it
   * is still running (never, when omitted); resolves with the exit code.
   */
  stop(killAfterMs?: number): Promise<number | null>;
}

/** Starts `command args` in the background. */
export function startProcess(
  command: string,
  args: readonly string[],
  options: StartOptions,
): RunningProcess {
  const modes = { stdout: options.stdout ?? 'collect', stderr: options.stderr ?? 'collect' };
  const stdio = (mode: OutputMode) => (mode === 'collect' ? 'pipe' : mode);
  const child = spawn(command, args, {
    env: options.env,
    stdio: ['ignore', stdio(modes.stdout), stdio(modes.stderr)],
  });
  const collected = { stdout: '', stderr: '', both: '' };
  const partial = { stdout: '', stderr: '' };
  const lines: string[] = [];
  const listeners: ((line: string, stream: StreamName) => void)[] = [];
  const collect = (stream: StreamName) => (chunk: Buffer) => {
    const text = chunk.toString();
    collected[stream] += text;
    collected.both += text;
    const parts = (partial[stream] + text).split('\n');
    partial[stream] = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const listener of listeners) listener(line, stream);
    }
  };
  child.stdout?.on('data', collect('stdout'));
  child.stderr?.on('data', collect('stderr'));
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => resolve(code)),
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    output: () => collected.both,
    stdout: () => collected.stdout,
    stderr: () => collected.stderr,
    running,
    onLine: (listener) => {
      listeners.push(listener);
    },
    waitForLine(match, timeoutMs) {
      const accepts =
        typeof match === 'function'
          ? match
          : typeof match === 'string'
            ? (line: string) => line.includes(match)
            : (line: string) => match.test(line);
      const seen = lines.find(accepts);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no line matching ${String(match)} within ${timeoutMs} ms`)),
          timeoutMs,
        );
        listeners.push((line) => {
          if (!accepts(line)) return;
          clearTimeout(timer);
          resolve(line);
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(
            new Error(`the process ended (code ${code}) before a line matching ${String(match)}`),
          );
        });
      });
    },
    async stop(killAfterMs) {
      if (!running()) return exited;
      child.kill('SIGTERM');
      if (killAfterMs === undefined) return exited;
      const timer = setTimeout(() => {
        if (running()) child.kill('SIGKILL');
      }, killAfterMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** What a finished process printed and returned. */
export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** From spawn to the end of its streams. */
  ms: number;
}

/** Runs `command args` to completion (SIGKILLed after `timeoutMs`); rejects only if it cannot be spawned. */
export function runProcess(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<ProcessResult> {
  const started = Date.now();
  const run = startProcess(command, args, { env: options.env });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => run.child.kill('SIGKILL'), options.timeoutMs);
    run.child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    void run.exited.then((code) => {
      clearTimeout(timer);
      resolve({ code, stdout: run.stdout(), stderr: run.stderr(), ms: Date.now() - started });
    });
  });
}
