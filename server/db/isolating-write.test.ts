import { describe, expect, it } from "vitest";
import { isRowDataError } from "./errors.js";
import { writeIsolatingBadRows } from "./isolating-write.js";

/** A write that fails like PostgreSQL does on a NUL (22021) for any batch containing a bad row. */
function fakeTable(bad: (row: number) => boolean) {
  const stored: number[] = [];
  let statements = 0;
  const write = async (rows: readonly number[]) => {
    statements++;
    if (rows.some(bad)) throw Object.assign(new Error("invalid byte sequence for encoding \"UTF8\": 0x00"), { code: "22021" });
    stored.push(...rows);
  };
  return { stored, write, statements: () => statements };
}

describe("writeIsolatingBadRows", () => {
  it("writes a clean batch in one statement", async () => {
    const t = fakeTable(() => false);
    const rows = Array.from({ length: 100 }, (_, i) => i);
    expect(await writeIsolatingBadRows(rows, t.write)).toEqual({ written: 100, rejected: [] });
    expect(t.statements()).toBe(1);
  });

  it("drops exactly the bad rows and writes every other, in O(log n) statements per bad row", async () => {
    const t = fakeTable((r) => r === 17 || r === 901);
    const rows = Array.from({ length: 1000 }, (_, i) => i);
    const result = await writeIsolatingBadRows(rows, t.write);
    expect(result.rejected).toEqual([17, 901]);
    expect(result.written).toBe(998);
    expect(t.stored.sort((a, b) => a - b)).toEqual(rows.filter((r) => r !== 17 && r !== 901));
    expect(t.statements()).toBeLessThan(2 * 2 * Math.ceil(Math.log2(1000)) + 2);
  });

  it("does not split on errors that are not about the values: the caller keeps and retries the batch", async () => {
    let statements = 0;
    const down = async () => {
      statements++;
      throw Object.assign(new Error("Connection terminated"), { code: "57P01" });
    };
    await expect(writeIsolatingBadRows([1, 2, 3, 4], down)).rejects.toThrow("Connection terminated");
    expect(statements).toBe(1);
  });

  it("classifies data, integrity and limit errors as row errors, nothing else", () => {
    for (const code of ["22021", "22P05", "22003", "23505", "54000"]) expect(isRowDataError({ code })).toBe(true);
    for (const code of ["57P01", "08006", "40001", "53300", undefined]) expect(isRowDataError({ code })).toBe(false);
    expect(isRowDataError(new Error("x"))).toBe(false);
  });
});
