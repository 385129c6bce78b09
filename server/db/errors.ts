/** Whether a database error is a unique-constraint violation (SQLSTATE 23505), from pg or PGlite. */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "23505";
}

/**
 * Whether the database refused a statement because of the VALUES it was given — a data
 * exception (SQLSTATE class 22: bad encoding, a NUL, a number out of range), an integrity
 * violation (23) or a program limit (54: e.g. an index row too large) — as opposed to the
 * database being unreachable, overloaded or in a conflict, where the same rows would succeed
 * later. Only the first kind is worth splitting a batch for.
 */
export function isRowDataError(err: unknown): boolean {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" && /^(22|23|54)/.test(code);
}
