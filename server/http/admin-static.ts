import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { NodeRequestHandler } from "./listener.js";

/** Where the web admin is served. */
export const ADMIN_PREFIX = "/admin/";

/** The built console in the checkout (web/dist, committed; docs/web-admin.md, "Building"). */
export const DEFAULT_ADMIN_DIST = fileURLToPath(new URL("../../web/dist/", import.meta.url));

/**
 * The console loads only its own files and talks only to this origin: no inline script or
 * style, no plugins, never framed (clickjacking an approve button), no <base> rewriting.
 */
export const ADMIN_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": ADMIN_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), clipboard-read=()",
};

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
  ".map": "application/json",
};

const COMPRESSIBLE = new Set([".html", ".js", ".css", ".svg", ".json", ".txt", ".map"]);

// Total size of the console that is loaded into memory; a dist much larger is a mistake.
const MAX_DIST_BYTES = 16 * 1024 * 1024;

interface StaticFile {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  etag: string;
  cacheControl: string;
}

/** What adminConsole() serves; tests point `distDir` elsewhere. */
export interface AdminConsoleOptions {
  distDir?: string;
}

/**
 * Serves the built web admin at /admin/ in front of `next` (the Connect handler). The files are
 * read into memory once, at start: a request can only ever get one of them, looked up by its
 * exact path, so no request path reaches the file system (no traversal, no symlinks followed
 * at request time). Paths without a file extension get index.html (the SPA's own routes).
 */
export function adminConsole(next: NodeRequestHandler, options: AdminConsoleOptions = {}): NodeRequestHandler {
  const distDir = options.distDir ?? DEFAULT_ADMIN_DIST;
  const files = loadDist(distDir);
  return (req, res) => {
    const url = req.url ?? "/";
    if (url !== "/admin" && !url.startsWith(ADMIN_PREFIX) && !url.startsWith("/admin?")) {
      next(req, res);
      return;
    }
    const answer = (status: number, headers: Record<string, string | number>, body?: Buffer | string) => {
      res.writeHead(status, { ...SECURITY_HEADERS, ...headers });
      if (req.method === "HEAD" || body === undefined) res.end();
      else res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      answer(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }, "method not allowed\n");
      return;
    }
    const path = url.split("?")[0] ?? "";
    if (path === "/admin") {
      answer(308, { location: ADMIN_PREFIX, "content-type": "text/plain; charset=utf-8" }, "moved to /admin/\n");
      return;
    }
    const key = cleanPath(path);
    if (key === undefined) {
      answer(400, { "content-type": "text/plain; charset=utf-8" }, "bad path\n");
      return;
    }
    const index = files.get("index.html");
    if (!index) {
      answer(503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, `the web admin is not built: no index.html in ${distDir} (npm run build:web)\n`);
      return;
    }
    // A path with an extension names a file; one without is a route of the single-page app.
    const file = files.get(key) ?? (extname(key) === "" ? index : undefined);
    if (!file) {
      answer(404, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" }, "not found\n");
      return;
    }
    const headers: Record<string, string | number> = { "content-type": file.type, "cache-control": file.cacheControl, etag: file.etag, vary: "accept-encoding" };
    if (req.headers["if-none-match"] === file.etag) {
      answer(304, headers);
      return;
    }
    const acceptEncoding = String(req.headers["accept-encoding"] ?? "");
    const gzip = file.gzip && /\bgzip\b/.test(acceptEncoding) ? file.gzip : undefined;
    const body = gzip ?? file.body;
    answer(200, { ...headers, "content-length": body.length, ...(gzip ? { "content-encoding": "gzip" } : {}) }, body);
  };
}

/**
 * The file key of a request path under /admin/, or undefined for anything that is not a plain
 * relative path: dot segments, backslashes, NUL and other control characters, encoded slashes,
 * or bad percent-encoding. Such requests are refused, not normalised, so no two spellings
 * reach the same file.
 */
export function cleanPath(path: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.slice(ADMIN_PREFIX.length));
  } catch {
    return undefined;
  }
  if (decoded.includes("\\") || hasControlCharacter(decoded) || /%2f|%5c/i.test(path)) return undefined;
  const segments = decoded.split("/");
  if (segments.some((s) => s === "." || s === "..")) return undefined;
  if (segments.slice(0, -1).some((s) => s === "")) return undefined;
  return decoded === "" ? "index.html" : decoded;
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function loadDist(distDir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!existsSync(distDir)) return files;
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        const key = relative(distDir, full).split(sep).join("/");
        const body = readFileSync(full);
        total += body.length;
        if (total > MAX_DIST_BYTES) throw new Error(`${distDir} holds more than ${MAX_DIST_BYTES} bytes; is it really the built console?`);
        const ext = extname(key).toLowerCase();
        files.set(key, {
          body,
          gzip: COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined,
          type: TYPES[ext] ?? "application/octet-stream",
          etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
          // Vite names everything under assets/ by content hash: it never changes under that name.
          cacheControl: key.startsWith("assets/") ? "public, max-age=31536000, immutable" : "no-cache",
        });
      }
    }
  };
  walk(distDir);
  return files;
}
