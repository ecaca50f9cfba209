/**
 * The child-process runner that tests, benchmarks and the demo share, on
 * small `node -e` scripts (no services): output is collected per stream and
 * interleaved, a line can be waited for, a stop escalates from SIGTERM to
 * SIGKILL only when asked, and a run to completion returns the exit code.
 */
import { describe, expect, it } from 'vitest';
import { runProcess, startProcess } from '../../scripts/process-runner.js';

const env = { PATH: process.env.PATH };
const node = (script: string) => [process.execPath, ['-e', script]] as const;

describe('the process runner', () => {
  it('runs to completion with the exit code and each stream', async () => {
    const [command, args] = node(
      'process.stdout.write("out\\n"); process.stderr.write("err\\n"); process.exit(3)',
    );
    const result = await runProcess(command, args, { env, timeoutMs: 10_000 });
    expect(result).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('passes exactly the environment given', async () => {
    const [command, args] = node(
      'process.stdout.write(String(process.env.ONLY) + String(process.env.HOME))',
    );
    const result = await runProcess(command, args, { env: { ONLY: 'x' }, timeoutMs: 10_000 });
    expect(result.stdout).toBe('xundefined');
  });

  it('kills a run that outlives its timeout', async () => {
    const [command, args] = node('setInterval(() => {}, 1000)');
    const result = await runProcess(command, args, { env, timeoutMs: 200 });
    expect(result.code).toBeNull();
  });

  it('waits for a line, including one printed before the wait began', async () => {
    const [command, args] = node(
      'console.error("ready"); setTimeout(() => console.log("later"), 100); setInterval(() => {}, 1000)',
    );
    const run = startProcess(command, args, { env });
    expect(await run.waitForLine('later', 10_000)).toBe('later');
    expect(await run.waitForLine(/^rea/, 10_000)).toBe('ready');
    expect(run.output()).toBe('ready\nlater\n');
    expect(await run.stop()).toBeNull();
    expect(run.running()).toBe(false);
  });

  it('rejects a line wait when the process ends first', async () => {
    const [command, args] = node('console.log("bye")');
    const run = startProcess(command, args, { env });
    await expect(run.waitForLine('never', 10_000)).rejects.toThrow(/ended \(code 0\)/);
  });

  it('stops with SIGTERM, and with SIGKILL after the grace period if SIGTERM is ignored', async () => {
    const [command, args] = node(
      'process.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000)',
    );
    const run = startProcess(command, args, { env });
    await run.waitForLine('up', 10_000);
    expect(await run.stop(200)).toBeNull();
    expect(run.child.signalCode).toBe('SIGKILL');
  });

  it('returns the exit code of a process that handles SIGTERM', async () => {
    const [command, args] = node(
      'process.on("SIGTERM", () => process.exit(0)); console.log("up"); setInterval(() => {}, 1000)',
    );
    const run = startProcess(command, args, { env });
    await run.waitForLine('up', 10_000);
    expect(await run.stop(10_000)).toBe(0);
  });
});
