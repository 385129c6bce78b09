#!/usr/bin/env node
// The container HEALTHCHECK: GET a health path (default /readyz) on this container's own
// gateway port, as AGW_LISTEN and AGW_TLS_CERT configure it. Exit 0 on 200, 1 otherwise.
// Plain JavaScript, no tsx: it runs every few seconds and must start fast.
import http from "node:http";
import https from "node:https";

const path = process.argv[2] ?? "/readyz";
const listen = process.env.AGW_LISTEN || "127.0.0.1:7070";
const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
if (!match) {
  console.error(`healthcheck: AGW_LISTEN is not host:port: ${listen}`);
  process.exit(1);
}
let host = match[1].replace(/^\[|\]$/g, "");
// A wildcard bind answers on loopback too.
if (host === "0.0.0.0") host = "127.0.0.1";
if (host === "::") host = "::1";
const tls = Boolean(process.env.AGW_TLS_CERT);
const client = tls ? https : http;
// The certificate names the public host, not loopback; this probe only asks its own process.
const req = client.request({ host, port: Number(match[2]), path, method: "GET", timeout: 2500, rejectUnauthorized: false }, (res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (chunk) => {
    if (body.length < 4096) body += chunk;
  });
  res.on("end", () => {
    console.log(`${res.statusCode} ${body.trim()}`);
    process.exit(res.statusCode === 200 ? 0 : 1);
  });
});
req.on("timeout", () => req.destroy(new Error("timed out")));
req.on("error", (err) => {
  console.error(`healthcheck: ${err.message}`);
  process.exit(1);
});
req.end();
