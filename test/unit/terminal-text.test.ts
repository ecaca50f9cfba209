/**
 * Text from the database made safe for a terminal, on its own (the CLI tests
 * check it through `tenants` and `dead list` on a live database): every
 * character that could move the cursor, repaint, reorder or hide text shows
 * as a visible escape; everything else prints as it is.
 */
import { describe, expect, it } from 'vitest';
import { printable } from '../../src/cli/terminal-text.js';

describe('printable terminal text', () => {
  it('leaves text with nothing unsafe as it is, letters of any script and emoji included', () => {
    for (const text of ['acme-42', 'Zürich / 東京 / Ελλάδα', 'order 🚚 shipped', '']) {
      expect(printable(text)).toBe(text);
    }
  });

  it.each([
    ['an ESC sequence', '\u001b[31mred', '\\x1b[31mred'],
    ['a newline, a carriage return and a tab', 'a\nb\rc\td', 'a\\nb\\rc\\td'],
    ['NUL and DEL', '\u0000\u007f', '\\x00\\x7f'],
    ['a C1 control (CSI)', '\u009b2J', '\\x9b2J'],
    ['a right-to-left override', 'abc\u202edef', 'abc\\u202edef'],
    ['zero-width characters and a BOM', '\u200ba\u200d\ufeff', '\\u200ba\\u200d\\ufeff'],
    ['line and paragraph separators', 'a\u2028b\u2029', 'a\\u2028b\\u2029'],
    ['a lone surrogate', 'a\ud800b', 'a\\ud800b'],
    ['a tag character', 'x\u{e0041}', 'x\\u{e0041}'],
  ])('shows %s as visible escapes', (_what, raw, shown) => {
    expect(printable(raw)).toBe(shown);
  });

  it('escapes the backslash too, so an escape and the text that looks like it stay apart', () => {
    expect(printable('\\n')).toBe('\\\\n');
    expect(printable('\n')).toBe('\\n');
    expect(printable('\\n')).not.toBe(printable('\n'));
  });

  it('always prints on one line', () => {
    const hostile = 'tenant\n\u001b[2K\u001b[1Apaused  0  0\r\u2028\u0085';
    const shown = printable(hostile);
    for (const breaker of ['\n', '\r', '\u2028', '\u2029', '\u0085', '\u001b']) {
      expect(shown).not.toContain(breaker);
    }
    expect(shown).toBe('tenant\\n\\x1b[2K\\x1b[1Apaused  0  0\\r\\u2028\\x85');
  });
});
