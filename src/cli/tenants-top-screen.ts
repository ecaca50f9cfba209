/**
 * How `tenants --top` shows a sample: a table of the tenants writing fastest,
 * redrawn in place on a terminal (alternate screen, cursor hidden, both
 * restored on leaving), or printed one table after another, with no control
 * codes, anywhere else (a pipe, a file, a log collector).
 */
import {
  age,
  type FlagSourceReport,
  flagSourceLine,
  stateText,
  type TenantStateReport,
} from './tenant-states.js';
import { printable } from './terminal-text.js';

/** One tenant of a sample. */
export interface TopTenant extends TenantStateReport {
  tenantId: string;
  /** null until the tenant has been seen in two reads. */
  writesPerSecond: number | null;
  pending: number;
  oldestPendingSeconds: number;
}

/** What one interval measured. */
export interface TopSample {
  flagSource: FlagSourceReport;
  /** The database's time of the read. */
  readAt: Date;
  /** Since the previous read. */
  intervalSeconds: number;
  /** Every tenant's writes together. */
  writesPerSecond: number;
  pending: number;
  oldestPendingSeconds: number;
  /** Tenants that wrote or were claimed lately (all of them may not be listed). */
  activeTenants: number;
  /** Fastest writers first. */
  tenants: TopTenant[];
}

/** A rate as the table shows it. */
function rate(perSecond: number | null): string {
  if (perSecond === null) return '-';
  return perSecond < 10 ? perSecond.toFixed(1) : String(Math.round(perSecond));
}

/** The lines of a sample's table, with at most `maxTenants` tenant rows; text from outside is escaped. */
export function topLines(sample: TopSample, maxTenants: number): string[] {
  const shown = sample.tenants.slice(0, Math.max(0, maxTenants));
  const time = sample.readAt.toISOString().slice(11, 19);
  const lines = [
    flagSourceLine(sample.flagSource),
    `${time} UTC, over ${sample.intervalSeconds.toFixed(1)}s: ${rate(sample.writesPerSecond)} writes/s, ` +
      `${sample.pending} pending (oldest ${age(sample.oldestPendingSeconds)}), ` +
      `${sample.activeTenants} tenants active`,
  ];
  const ids = shown.map((t) => printable(t.tenantId));
  const width = Math.max(6, ...ids.map((id) => id.length));
  lines.push(
    `${'TENANT'.padEnd(width)}  ${'WRITES/S'.padStart(9)}  ${'PENDING'.padStart(9)}  ${'OLDEST'.padStart(6)}  STATE`,
  );
  shown.forEach((t, i) => {
    lines.push(
      `${(ids[i] ?? '').padEnd(width)}  ${rate(t.writesPerSecond).padStart(9)}  ${String(t.pending).padStart(9)}  ${age(t.oldestPendingSeconds).padStart(6)}  ${stateText(t)}`,
    );
  });
  if (sample.tenants.length === 0) lines.push('(no tenant wrote or was claimed lately)');
  else if (sample.tenants.length > shown.length) {
    lines.push(`(${sample.tenants.length - shown.length} more not shown)`);
  }
  return lines;
}

/** The stream a screen draws on: process.stdout, or a stand-in in tests. */
export interface TopOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  rows?: number;
  columns?: number;
}

const ENTER = '\x1b[?1049h\x1b[?25l'; // alternate screen, cursor hidden
const LEAVE = '\x1b[?25h\x1b[?1049l'; // cursor shown, main screen back
const HOME = '\x1b[H';
const CLEAR_LINE = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';

/** Draws samples on a terminal in place, or as plain consecutive tables. */
export class TopScreen {
  private entered = false;

  constructor(private readonly out: TopOutput) {}

  /** Whether the output is a terminal (and so gets control codes). */
  get live(): boolean {
    return this.out.isTTY === true;
  }

  /** How many tenant rows fit: the terminal's height, or `plain` elsewhere. */
  tenantRows(plain: number): number {
    // A terminal that reports no size (0) gets the usual 24 rows and 80 columns.
    return this.live ? Math.max(1, (this.out.rows || 24) - 5) : plain;
  }

  /** On a terminal: switches to the alternate screen and hides the cursor. */
  enter(): void {
    if (!this.live || this.entered) return;
    this.entered = true;
    this.out.write(ENTER);
  }

  /** Replaces the screen's content with `lines` (cut to its width); elsewhere, prints them and a blank line. */
  draw(lines: readonly string[]): void {
    if (!this.live) {
      this.out.write(`${lines.join('\n')}\n\n`);
      return;
    }
    const width = this.out.columns || 80;
    const text = lines.map((line) => `${[...line].slice(0, width).join('')}${CLEAR_LINE}`);
    this.out.write(`${HOME}${text.join('\r\n')}\r\n${CLEAR_BELOW}`);
  }

  /** Restores the terminal (the cursor, the main screen); safe to call twice. */
  leave(): void {
    if (!this.entered) return;
    this.entered = false;
    this.out.write(LEAVE);
  }
}
