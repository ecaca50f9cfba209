import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FILES_WITH_TABLE, settingsTable, tableIn } from '../../scripts/config-docs.js';

describe('documentation', () => {
  it.each(FILES_WITH_TABLE)('%s lists every setting exactly as the code defines it', (file) => {
    expect(tableIn(readFileSync(file, 'utf8'))).toBe(settingsTable());
  });
});
