import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { microsToSql, timestampFromMicros, timestampMicros, timestampToInstant, timestampToSql } from "./timestamps.js";

const ts = (seconds: bigint, nanos = 0) => create(TimestampSchema, { seconds, nanos });

describe("ingest timestamps", () => {
  it("writes microsecond UTC literals, truncating nanoseconds", () => {
    expect(timestampToSql(ts(1_700_000_000n, 123_456_789))).toBe("2023-11-14T22:13:20.123456Z");
    expect(timestampToSql(ts(-1n, 1000))).toBe("1969-12-31T23:59:59.000001Z");
    expect(timestampToSql(ts(-62_135_596_800n))).toBe("0001-01-01T00:00:00.000000Z");
    expect(timestampToSql(ts(253_402_300_799n, 999_999_999))).toBe("9999-12-31T23:59:59.999999Z");
  });

  it("refuses what google.protobuf.Timestamp does not allow", () => {
    expect(timestampToSql(ts(253_402_300_800n))).toBeUndefined();
    expect(timestampToSql(ts(-62_135_596_801n))).toBeUndefined();
    expect(timestampToSql(ts(0n, -1))).toBeUndefined();
    expect(timestampToSql(ts(0n, 1_000_000_000))).toBeUndefined();
    expect(timestampMicros(ts(253_402_300_800n))).toBeUndefined();
    expect(timestampToInstant(ts(253_402_300_800n))).toBeUndefined();
    expect(timestampToInstant(ts(-62_135_596_801n))).toBeUndefined();
    expect(timestampToInstant(ts(0n, -1))).toBeUndefined();
    expect(timestampToInstant(ts(0n, 1_000_000_000))).toBeUndefined();
  });

  it("splits instants into whole seconds and microseconds, truncating nanoseconds", () => {
    expect(timestampToInstant(ts(1_700_000_000n, 123_456_789))).toEqual({ seconds: 1_700_000_000, micros: 123_456 });
    expect(timestampToInstant(ts(-1n, 1000))).toEqual({ seconds: -1, micros: 1 });
    expect(timestampToInstant(ts(-62_135_596_800n))).toEqual({ seconds: -62_135_596_800, micros: 0 });
    expect(timestampToInstant(ts(253_402_300_799n, 999_999_999))).toEqual({ seconds: 253_402_300_799, micros: 999_999 });
  });

  it("round-trips microseconds (page tokens) exactly, before and after the epoch", () => {
    for (const micros of [0n, 1n, -1n, 1_700_000_000_123_456n, -62_135_596_800_000_000n]) {
      const back = timestampFromMicros(micros);
      expect(timestampMicros(back)).toBe(micros);
      expect(microsToSql(micros)).toBe(timestampToSql(back));
    }
  });
});
