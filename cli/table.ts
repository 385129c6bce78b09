/**
 * Human output: aligned tables fitted to the terminal, key/value views, relative times and
 * colour. Colour is decided by the caller (TTY and no NO_COLOR) and applied after alignment,
 * so escape codes never count towards a column's width.
 */

/** Colours agwctl uses, by meaning. */
export type Style = "good" | "warn" | "bad" | "dim" | "bold";

/** A table cell: text, optionally styled. */
export type Cell = string | { text: string; style?: Style };

const SGR: Record<Style, [string, string]> = {
  good: ["\x1b[32m", "\x1b[39m"],
  warn: ["\x1b[33m", "\x1b[39m"],
  bad: ["\x1b[31m", "\x1b[39m"],
  dim: ["\x1b[2m", "\x1b[22m"],
  bold: ["\x1b[1m", "\x1b[22m"],
};

/** Wraps text in the style's escape codes when colour is on. */
export function paint(text: string, style: Style | undefined, colour: boolean): string {
  if (!colour || !style || !text) return text;
  const [on, off] = SGR[style];
  return `${on}${text}${off}`;
}

const cellText = (cell: Cell) => (typeof cell === "string" ? cell : cell.text);
const cellStyle = (cell: Cell) => (typeof cell === "string" ? undefined : cell.style);

/** Shortens text to `width` characters, marking the cut with an ellipsis. */
export function truncate(text: string, width: number): string {
  const chars = [...text];
  if (chars.length <= width) return text;
  return width <= 1 ? chars.slice(0, width).join("") : `${chars.slice(0, width - 1).join("")}…`;
}

const GAP = 2;
/** Columns are never shrunk below this (or their header). */
const MIN_COLUMN = 6;

/** Options of a table. */
export interface TableOptions {
  /** The terminal width to fit into; undefined for no limit (output is piped). */
  width?: number;
  colour: boolean;
  /** Indexes of columns that hold little and must not shrink (IDs, states). Others shrink widest first. */
  fixed?: number[];
}

/**
 * Renders rows under headers with two spaces between columns. When the table is wider than
 * `width`, the widest shrinkable columns lose characters first (cells end in "…"), never below
 * their header or six characters.
 */
export function renderTable(headers: string[], rows: Cell[][], options: TableOptions): string {
  const widths = headers.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...cellText(r[i] ?? "")].length)));
  if (options.width !== undefined) {
    const fixed = new Set(options.fixed ?? []);
    const floor = headers.map((h) => Math.max([...h].length, MIN_COLUMN));
    let total = widths.reduce((a, b) => a + b, 0) + GAP * (headers.length - 1);
    while (total > options.width) {
      let widest = -1;
      widths.forEach((w, i) => {
        if (!fixed.has(i) && w > (floor[i] ?? MIN_COLUMN) && (widest === -1 || w > (widths[widest] ?? 0))) widest = i;
      });
      if (widest === -1) break;
      widths[widest] = (widths[widest] ?? 1) - 1;
      total--;
    }
  }
  const line = (cells: Cell[], header: boolean) =>
    cells
      .map((cell, i) => {
        const width = widths[i] ?? 0;
        const text = truncate(cellText(cell), width);
        const pad = i === cells.length - 1 ? "" : " ".repeat(width - [...text].length + GAP);
        return paint(text, header ? "bold" : cellStyle(cell), options.colour) + pad;
      })
      .join("")
      .trimEnd();
  return [line(headers, true), ...rows.map((r) => line(r, false))].join("\n");
}

/** Renders "key: value" lines with the values aligned. */
export function renderFields(fields: Array<[string, Cell]>, colour: boolean): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length)) + 1;
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width + 1)}${paint(cellText(v), cellStyle(v), colour)}`.trimEnd()).join("\n");
}

/** "12s ago", "5m ago", "3h ago", "2d ago", "in 4m"; "-" when there is no time. */
export function relativeTime(at: Date | undefined, now: Date = new Date()): string {
  if (!at) return "-";
  const deltaS = Math.round((now.getTime() - at.getTime()) / 1000);
  const abs = Math.abs(deltaS);
  if (abs < 2) return "just now";
  let amount: string;
  if (abs < 90) amount = `${abs}s`;
  else if (abs < 90 * 60) amount = `${Math.round(abs / 60)}m`;
  else if (abs < 36 * 3600) amount = `${Math.round(abs / 3600)}h`;
  else amount = `${Math.round(abs / 86400)}d`;
  return deltaS >= 0 ? `${amount} ago` : `in ${amount}`;
}

/** "k=v,k2=v2" (sorted), or "-". */
export function formatLabels(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([k, v]) => (v ? `${k}=${v}` : k)).join(",") : "-";
}
