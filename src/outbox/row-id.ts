/**
 * Row ids travel as decimal strings (a bigint does not fit a JS number);
 * this orders them as the numbers they are.
 */

/** Orders decimal bigint strings numerically. */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
