/**
 * The version of the installed package, read at run time from the
 * package.json next to the code (two levels up from dist/cli/ or src/cli/),
 * so it is always the version of the files that run, never a copy baked in.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describeError } from '../errors.js';

/** Where the package's own package.json is, relative to this module. */
const PACKAGE_JSON = new URL('../../package.json', import.meta.url);

/** The `version` field of this package's package.json; fails with one clear message. */
export function packageVersion(): string {
  const path = fileURLToPath(PACKAGE_JSON);
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read the package version from ${path}: ${describeError(error)}`, {
      cause: error,
    });
  }
  const version = (manifest as { version?: unknown } | null)?.version;
  if (typeof version !== 'string' || version === '') {
    throw new Error(`cannot read the package version from ${path}: it has no version`);
  }
  return version;
}
