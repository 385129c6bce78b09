import { createServer, type Server } from "node:http";
import type { NodeRequestHandler } from "../http/listener.js";
import { renderMetrics } from "./metrics.js";

type Request = Parameters<NodeRequestHandler>[0];
type Response = Parameters<NodeRequestHandler>[1];

/** Prometheus' text exposition format. */
const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Answers one scrape (GET or HEAD), or 405. */
function serveMetrics(req: Request, res: Response): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" });
    res.end();
    return;
  }
  renderMetrics().then(
    (text) => {
      res.writeHead(200, { "content-type": CONTENT_TYPE, "cache-control": "no-store" });
      if (req.method === "HEAD") res.end();
      else res.end(text);
    },
    () => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end("metrics collection failed\n");
    },
  );
}

/** Serves `GET /metrics` in front of `next`, on the gateway's own port (HTTP/1.1 and HTTP/2). */
export function withMetricsEndpoint(next: NodeRequestHandler): NodeRequestHandler {
  return (req, res) => {
    if ((req.url ?? "").split("?")[0] === "/metrics") serveMetrics(req, res);
    else next(req, res);
  };
}

/** A separate plain-HTTP listener serving only `/metrics` (AGW_METRICS_LISTEN). */
export async function listenForMetrics(host: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if ((req.url ?? "").split("?")[0] === "/metrics") serveMetrics(req, res);
    else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found: metrics are at /metrics\n");
    }
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shown}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
