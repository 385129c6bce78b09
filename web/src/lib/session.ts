import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import { bearerInterceptor } from "../../../client/admin-client.js";

/**
 * The operator key lives in sessionStorage only: it survives a reload of this tab and is gone
 * when the tab closes. Never localStorage (shared by every tab, kept forever) and never a
 * cookie (sent without the page asking, so open to CSRF).
 */
const STORAGE_KEY = "agentgateway.operatorKey";

/** The key this tab signed in with, if any. */
export function storedKey(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Remembers the key for this tab. */
export function storeKey(key: string): void {
  sessionStorage.setItem(STORAGE_KEY, key);
}

/** Forgets the key (sign-out, or the gateway refused it). */
export function forgetKey(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

/**
 * A Connect-Web transport to the gateway that served this page, sending `key` as the bearer
 * credential of every call (the shared client layer's interceptor, as the CLI uses).
 */
export function gatewayTransport(key: string): Transport {
  return createConnectTransport({ baseUrl: window.location.origin, interceptors: [bearerInterceptor(key)] });
}

/** A typed client of an admin service over `transport` (for streams, which connect-query does not cover). */
export function serviceClient<S extends DescService>(service: S, transport: Transport): Client<S> {
  return createClient(service, transport);
}
