import { stripVTControlCharacters } from 'node:util';
import pc from 'picocolors';
import type { CallStatus } from '../protocol/types';

export interface OutputMode {
  /** One JSON document on stdout, nothing else. */
  json: boolean;
  /** Only what a script needs: names, call numbers, results. */
  quiet: boolean;
  color: boolean;
  /** Print what functions and the platform wrote byte for byte, control sequences included. */
  raw?: boolean;
}

/**
 * Text a function or another user wrote, made harmless for a terminal: escape sequences (CSI, OSC
 * such as window titles and hyperlinks, DCS), other C0 and C1 control characters and the bidi
 * overrides that make text read differently than it runs are removed; new lines and tabs stay,
 * and a carriage return survives only before a new line (a lone one redraws the line it is on).
 */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return stripVTControlCharacters(text).replace(/\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, '');
}

/** Colours only on a terminal, never with NO_COLOR or --no-color; FORCE_COLOR forces them. */
export function wantsColor(flag: boolean | undefined, stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (flag === false || 'NO_COLOR' in env) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== '0') return true;
  return Boolean(stream.isTTY) && env.TERM !== 'dumb';
}

/**
 * A time the platform recorded, in the one convention of every command: UTC, the zone said
 * (`2026-12-02 02:57:02 UTC`; with milliseconds where one call is shown). --json keeps ISO 8601.
 */
export function formatTime(iso: string | undefined, withMs = false): string {
  if (!iso) return '-';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const text = date.toISOString();
  return `${text.slice(0, 10)} ${text.slice(11, withMs ? 23 : 19)} UTC`;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  /** Colour for the cell, applied after padding so that columns stay aligned. */
  paint?: (text: string, row: T) => string;
}

/** Plain columns separated by two spaces, as kubectl and docker print them. */
export function formatTable<T>(rows: T[], columns: Column<T>[], color: boolean): string {
  const cells = rows.map((row) => columns.map((col) => col.value(row).replace(/[\r\n\t]+/g, ' ')));
  const widths = columns.map((col, i) => Math.max(col.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (parts: string[]) => parts.join('  ').replace(/\s+$/, '');
  const header = line(columns.map((col, i) => col.header.padEnd(widths[i]!)));
  const body = cells.map((r, rowIndex) =>
    line(r.map((text, i) => {
      const padded = text.padEnd(widths[i]!);
      const paint = columns[i]!.paint;
      return color && paint ? paint(padded, rows[rowIndex]!) : padded;
    })),
  );
  return [color ? pc.bold(header) : header, ...body].join('\n');
}

export function paintStatus(text: string, status: CallStatus | string): string {
  switch (status) {
    case 'DONE':
      return pc.green(text);
    case 'ERROR':
    case 'TIMEOUT':
      return pc.red(text);
    case 'RUNNING':
      return pc.yellow(text);
    default:
      return pc.dim(text);
  }
}

/** Everything a command prints goes through here, so --json, --quiet and colours hold everywhere. */
export class Output {
  constructor(
    readonly mode: OutputMode,
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
    private readonly err: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  ) {}

  get color(): boolean {
    return this.mode.color;
  }

  /** The command's answer: `value` as JSON, `quiet` under --quiet (nothing when undefined), else `human`. */
  result(value: unknown, human: () => string, quiet?: () => string | undefined): void {
    if (this.mode.json) return this.line(JSON.stringify(value, null, 2));
    if (this.mode.quiet) {
      const text = quiet?.();
      if (text !== undefined && text !== '') this.line(text);
      return;
    }
    this.line(human());
  }

  /** A list: a table for people, the records under --json, the first column under --quiet. */
  table<T>(rows: T[], columns: Column<T>[], empty: string): void {
    this.result(
      rows,
      () => (rows.length === 0 ? empty : formatTable(rows, columns, this.color)),
      () => rows.map((r) => columns[0]!.value(r)).join('\n'),
    );
  }

  /** Progress and hints for a person: stderr, never under --json or --quiet. */
  note(text: string): void {
    if (!this.mode.json && !this.mode.quiet) this.err.write(`${text}\n`);
  }

  /** `text` as it may reach a terminal: control sequences stripped unless --raw. */
  safe(text: string): string {
    return this.mode.raw ? text : terminalSafe(text);
  }

  error(text: string): void {
    text = this.safe(text);
    this.err.write(`${this.mode.color && this.err.isTTY ? pc.red('error:') : 'error:'} ${text}\n`);
  }

  /** Whether a person is watching stderr (for progress that redraws a line). */
  get interactive(): boolean {
    return Boolean(this.err.isTTY) && !this.mode.json && !this.mode.quiet;
  }

  get stdoutIsTTY(): boolean {
    return Boolean(this.out.isTTY);
  }

  write(text: string): void {
    this.out.write(text);
  }

  progress(text: string): void {
    if (this.interactive) this.err.write(`\r\x1b[2K${text}`);
  }

  endProgress(): void {
    if (this.interactive) this.err.write('\r\x1b[2K');
  }

  private line(text: string): void {
    this.out.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}
