/**
 * Text from the database or the command line made safe to print on a
 * terminal. Tenant ids, keys, exchange names and error texts are written by
 * other programs and may hold ESC sequences, other control characters,
 * newlines or bidi overrides that would repaint the screen or fake a row.
 * Every human-readable output path of the CLI goes through {@link printable};
 * `--json` output relies on JSON's own escaping instead.
 */

/**
 * Control characters (C0, DEL, C1), format characters (bidi overrides and
 * isolates, zero-width characters, BOM, tag characters), line and paragraph
 * separators, lone surrogates, and the backslash that introduces our escapes.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\\]/gu;

const NAMED: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function escapeChar(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.codePointAt(0) ?? 0;
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
  if (code <= 0xffff) return `\\u${code.toString(16).padStart(4, '0')}`;
  return `\\u{${code.toString(16)}}`;
}

/**
 * `text` with every unsafe character shown as a visible escape (`\x1b`, `\n`,
 * `\u202e`, `\\` for a backslash), so that it prints on one line, unchanged in
 * appearance when it holds nothing unsafe, and can be told apart from any
 * other text.
 */
export function printable(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}
