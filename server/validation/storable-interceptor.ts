import type { DescMessage, Message } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { InvalidInputError } from "../errors/errors.js";
import { findUnstorable } from "./storable.js";

/**
 * Refuses every request message — unary, and each message of a client or bidi stream — that
 * holds a value the database cannot store (storable.ts), with InvalidArgument naming the field.
 * It runs for every method of every service, so no handler has to remember it.
 */
export function storableInputInterceptor(): Interceptor {
  return (next) => async (req) => {
    const schema = req.method.input;
    if (!req.stream) {
      assertStorable(schema, req.message);
      return next(req);
    }
    const messages = req.message;
    return next({
      ...req,
      message: (async function* () {
        for await (const m of messages) {
          assertStorable(schema, m);
          yield m;
        }
      })(),
    });
  };
}

/** Throws InvalidArgument naming the first field of `message` that holds a value no column can store. */
export function assertStorable(schema: DescMessage, message: Message): void {
  const bad = findUnstorable(schema, message);
  if (bad) throw new InvalidInputError(`${bad.path}: ${bad.problem}`);
}
