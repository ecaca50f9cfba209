/**
 * What `npm pack` ships from a clone that was never built: `prepack` builds
 * first, so the tarball holds the compiled entry points, not only sources:
 * every file package.json points at (exports for import and require, main,
 * types, bin).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');

/** Every file path in a package.json value (exports conditions, bin), without its './'. */
function pathsIn(value: unknown): string[] {
  if (typeof value === 'string') return [value.replace(/^\.\//, '')];
  if (typeof value !== 'object' || value === null) return [];
  return Object.values(value).flatMap(pathsIn);
}

describe('npm pack', () => {
  it('builds dist on an unbuilt clone, so the package carries its entry points and CLI', async () => {
    const clone = mkdtempSync(join(tmpdir(), 'outbox-pack-'));
    try {
      for (const entry of [
        'package.json',
        'tsconfig.json',
        'tsconfig.build.json',
        'tsconfig.cjs.json',
        'src',
      ]) {
        cpSync(join(ROOT, entry), join(clone, entry), { recursive: true });
      }
      for (const entry of ['migrations', 'sql', 'docs', 'README.md']) {
        cpSync(join(ROOT, entry), join(clone, entry), { recursive: true });
      }
      symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
      const { stdout } = await run(
        'npm',
        ['pack', '--dry-run', '--json', '--ignore-scripts=false'],
        {
          cwd: clone,
          timeout: 120_000,
          maxBuffer: 16 * 1024 * 1024,
        },
      );
      // prepack's own output precedes npm's JSON.
      const report = JSON.parse(stdout.slice(stdout.indexOf('\n[') + 1)) as {
        files: { path: string }[];
      }[];
      const files = new Set(report[0]?.files.map((file) => file.path));
      for (const path of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'package.json']) {
        expect(files.has(path), path).toBe(true);
      }
      const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<
        string,
        unknown
      >;
      const pointedAt = ['exports', 'main', 'types', 'typesVersions', 'bin'].flatMap((field) =>
        pathsIn(manifest[field]),
      );
      expect(pointedAt).toEqual(
        expect.arrayContaining([
          'dist/cjs/index.js',
          'dist/cjs/index.d.ts',
          'dist/enqueue-entry.js',
        ]),
      );
      for (const path of pointedAt) expect(files.has(path), path).toBe(true);
      // CommonJS reads dist/cjs/*.d.ts and the require() shims as CommonJS.
      expect(files.has('dist/cjs/package.json')).toBe(true);
      expect([...files].some((path) => path.startsWith('migrations/'))).toBe(true);
      // The claim's SQL files, read at run time next to dist/ as migrations/ are.
      for (const path of ['sql/claim.sql', 'sql/claim-tenants.sql']) {
        expect(files.has(path), path).toBe(true);
      }
      expect([...files].some((path) => path.startsWith('src/'))).toBe(false);
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  });
});
