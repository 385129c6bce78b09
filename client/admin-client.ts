/**
 * The one way to build an authenticated client of an admin service, for the CLI, tests,
 * benchmarks and the web admin: the operator API key travels as `Authorization: Bearer <key>`
 * on every call, added by one interceptor.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";

/** An interceptor that sends `key` as the bearer credential of every call. */
export function bearerInterceptor(key: string | (() => string)): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${typeof key === "function" ? key() : key}`);
    return next(req);
  };
}

/**
 * A typed client of `service` whose calls carry the API key. `makeTransport` receives the
 * interceptor to install, so the caller picks the transport (connect-node over HTTP/2, gRPC,
 * connect-web in a browser) and its trust settings.
 */
export function createAdminClient<S extends DescService>(
  service: S,
  apiKey: string | (() => string),
  makeTransport: (interceptors: Interceptor[]) => Transport,
): Client<S> {
  return createClient(service, makeTransport([bearerInterceptor(apiKey)]));
}
