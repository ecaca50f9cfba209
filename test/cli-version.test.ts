import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from './helpers/cli.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string;
};
const dir = mkdtempSync(join(tmpdir(), 'outbox-cli-version-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('outbox-relay --version', () => {
  it("prints this package's version and exits 0", async () => {
    expect(await runCli(['--version'])).toMatchObject({
      code: 0,
      stdout: `${manifest.version}\n`,
      stderr: '',
    });
  });

  it('reads the version of the installed package it runs from, through the bin link', () => {
    // node_modules/outbox-relay as npm installs it (dist and package.json),
    // with a version of its own, and the bin link npm makes to it.
    const installed = join(dir, 'node_modules', 'outbox-relay');
    mkdirSync(installed, { recursive: true });
    cpSync(dirname(dirname(CLI)), join(installed, 'dist'), { recursive: true });
    writeFileSync(
      join(installed, 'package.json'),
      JSON.stringify({ ...manifest, version: '9.8.7-installed' }),
    );
    // Its dependencies, where npm would have put them.
    symlinkSync(join(root, 'node_modules'), join(installed, 'node_modules'), 'dir');
    mkdirSync(join(dir, 'node_modules', '.bin'));
    const bin = join(dir, 'node_modules', '.bin', 'outbox-relay');
    symlinkSync('../outbox-relay/dist/cli/main.js', bin);

    const result = spawnSync(process.execPath, [bin, '--version'], {
      cwd: dir,
      env: { PATH: process.env.PATH },
      encoding: 'utf8',
    });
    expect(result).toMatchObject({ status: 0, stdout: '9.8.7-installed\n', stderr: '' });
  });

  it('takes nothing after it', async () => {
    const result = await runCli(['--version', 'run']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unexpected argument 'run' after --version/);
  });
});
