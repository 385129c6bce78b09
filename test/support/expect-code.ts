import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** Asserts that the call fails with exactly this Connect code (and message pattern). */
export async function expectCode(call: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${Code[code]}, but the call succeeded`).toBeInstanceOf(ConnectError);
  const error = caught as ConnectError;
  expect(Code[error.code], error.rawMessage).toBe(Code[code]);
  if (message) expect(error.rawMessage).toMatch(message);
  return error;
}
