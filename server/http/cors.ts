import { cors as connectCors } from "@connectrpc/connect";
import type { NodeRequestHandler } from "./listener.js";

// Only the operator API is meant for browsers; agents never run in one.
const ADMIN_PATH = /^\/agentgateway\.admin\.v1\.[A-Za-z]+\/[A-Za-z]+$/;

const ALLOW_HEADERS = [...connectCors.allowedHeaders, "authorization"].join(", ");
const EXPOSE_HEADERS = [...connectCors.exposedHeaders, "retry-after"].join(", ");
const ALLOW_METHODS = connectCors.allowedMethods.join(", ");

/**
 * Cross-origin access to the admin API for a console served from another origin
 * (AGW_CORS_ORIGINS). Off when the list is empty: the handler is `next` itself. An allowed
 * origin is echoed exactly (never `*`), no cookies are involved (the key travels in the
 * Authorization header), and a preflight from any other origin is refused with 403.
 */
export function corsForAdmin(next: NodeRequestHandler, allowedOrigins: readonly string[]): NodeRequestHandler {
  if (allowedOrigins.length === 0) return next;
  const allowed = new Set(allowedOrigins.map((o) => o.toLowerCase()));
  return (req, res) => {
    const origin = req.headers.origin;
    const path = (req.url ?? "").split("?")[0] ?? "";
    if (typeof origin !== "string" || !ADMIN_PATH.test(path)) {
      next(req, res);
      return;
    }
    const ok = allowed.has(origin.toLowerCase());
    if (req.method === "OPTIONS") {
      if (!ok) {
        res.writeHead(403, { vary: "origin", "content-type": "text/plain; charset=utf-8" });
        res.end("origin not allowed\n");
        return;
      }
      res.writeHead(204, {
        vary: "origin",
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": "7200",
      });
      res.end();
      return;
    }
    res.setHeader("vary", "origin");
    if (ok) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
    }
    next(req, res);
  };
}
