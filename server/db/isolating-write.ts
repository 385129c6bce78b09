import { isRowDataError } from "./errors.js";

/** The outcome of a batch write that isolates bad rows. */
export interface IsolatedWrite<T> {
  /** Rows written. */
  written: number;
  /** Rows the database refused on their own (dropped, never retried). */
  rejected: T[];
}

/**
 * Writes `rows` with `write` (one statement for many rows). When the database refuses the
 * batch because of the values in it (isRowDataError), the batch is split in halves and each
 * half written again, down to single rows, so a bad row costs O(log n) extra statements and
 * every other row is still written. Any other error (database down, conflict) rejects with the
 * batch, for the caller to keep and retry — so `write` must be idempotent (a retried batch may
 * contain rows a split already wrote); the heartbeat and ack writes are.
 */
export async function writeIsolatingBadRows<T>(rows: readonly T[], write: (rows: readonly T[]) => Promise<unknown>): Promise<IsolatedWrite<T>> {
  if (rows.length === 0) return { written: 0, rejected: [] };
  try {
    await write(rows);
    return { written: rows.length, rejected: [] };
  } catch (err) {
    if (!isRowDataError(err)) throw err;
    if (rows.length === 1) return { written: 0, rejected: [...rows] };
  }
  const middle = Math.ceil(rows.length / 2);
  const left = await writeIsolatingBadRows(rows.slice(0, middle), write);
  const right = await writeIsolatingBadRows(rows.slice(middle), write);
  return { written: left.written + right.written, rejected: [...left.rejected, ...right.rejected] };
}
