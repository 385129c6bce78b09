import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createAdminClient } from "../../client/admin-client.js";

/**
 * A client of an admin service on the gateway at `baseUrl`, authenticated with `key`: the
 * shared factory (client/admin-client.ts) over Connect on HTTP/2 (or HTTP/1.1, as a browser
 * or curl would come). Each client has its own connection, so it survives gateway restarts
 * like any fresh client.
 */
export function adminClient<S extends DescService>(service: S, baseUrl: string, key: string | (() => string), httpVersion: "1.1" | "2" = "2"): Client<S> {
  return createAdminClient(service, key, (interceptors) => createConnectTransport({ baseUrl, httpVersion, interceptors }));
}
