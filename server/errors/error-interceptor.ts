import type { Interceptor, StreamResponse, UnaryResponse } from "@connectrpc/connect";
import type { Logger } from "pino";
import { toConnectError } from "./connect-errors.js";

/**
 * Outermost interceptor: whatever a handler or another interceptor throws, the client sees the
 * code `toConnectError` chose, also for errors raised while a response stream is running.
 */
export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    let res: UnaryResponse | StreamResponse;
    try {
      res = await next(req);
    } catch (err) {
      throw toConnectError(err, logger);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (err) {
          throw toConnectError(err, logger);
        }
      })(),
    } as StreamResponse;
  };
}
