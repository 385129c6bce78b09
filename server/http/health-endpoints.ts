import type { NodeRequestHandler } from "./listener.js";

type Request = Parameters<NodeRequestHandler>[0];
type Response = Parameters<NodeRequestHandler>[1];

/** One readiness condition: resolves with nothing when met, with a short public reason when not. */
export type ReadinessCheck = () => Promise<string | undefined> | string | undefined;

/** Options for withHealthEndpoints(). */
export interface HealthEndpointOptions {
  /** Checked first and without I/O: while draining, /readyz fails at once. */
  draining: () => boolean;
  /** Named checks run by /readyz (database, migrations, bus …), in parallel. */
  checks: Record<string, ReadinessCheck>;
  /**
   * /readyz is unauthenticated, so a flood of probes must not become a flood of database
   * queries: one check run is shared by every request within this window (and while in flight).
   */
  cacheMs?: number;
  /** A check that has not answered within this long counts as failed ("timeout"). */
  timeoutMs?: number;
  /** Called when the readiness verdict changes, with the failing checks' reasons and errors (for the log). */
  onChange?: (ready: boolean, failures: Record<string, string>, errors: unknown[]) => void;
}

/** What /readyz answers, as JSON. Reasons are short fixed words, never error messages. */
export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, string>;
}

/**
 * Serves `GET|HEAD /healthz` (the process is alive and its event loop answers) and
 * `GET|HEAD /readyz` (it can do useful work: every check passes and it is not draining) in front
 * of the RPC handler, on the same port, over HTTP/1.1 and HTTP/2. Every other request goes to
 * `next`. Kubernetes and load balancers probe these paths; gRPC clients use grpc.health.v1.
 */
export function withHealthEndpoints(next: NodeRequestHandler, options: HealthEndpointOptions): NodeRequestHandler {
  const readiness = readinessProbe(options);
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/healthz" && path !== "/readyz") {
      next(req, res);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      reply(req, res, 405, { error: "method not allowed" }, { allow: "GET, HEAD" });
      return;
    }
    if (path === "/healthz") {
      reply(req, res, 200, { alive: true });
      return;
    }
    readiness().then(
      (report) => reply(req, res, report.ready ? 200 : 503, report),
      () => reply(req, res, 503, { ready: false, checks: { probe: "failed" } }),
    );
  };
}

/** The shared, time-bounded, cached readiness evaluation behind /readyz. */
export function readinessProbe(options: HealthEndpointOptions): () => Promise<ReadinessReport> {
  const cacheMs = options.cacheMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 2000;
  let cached: { at: number; run: Promise<Evaluation> } | undefined;
  let lastReady: boolean | undefined;

  const notify = (ready: boolean, failures: Record<string, string>, errors: unknown[]): void => {
    if (ready === lastReady) return;
    lastReady = ready;
    options.onChange?.(ready, failures, errors);
  };

  return async () => {
    if (options.draining()) {
      notify(false, { draining: "yes" }, []);
      return { ready: false, checks: { draining: "yes" } };
    }
    const now = Date.now();
    if (!cached || now - cached.at >= cacheMs) {
      const run = evaluate(options.checks, timeoutMs);
      cached = { at: now, run };
      run.then((e) => notify(e.report.ready, e.failures, e.errors));
    }
    return (await cached.run).report;
  };
}

interface Evaluation {
  report: ReadinessReport;
  failures: Record<string, string>;
  errors: unknown[];
}

async function evaluate(checks: Record<string, ReadinessCheck>, timeoutMs: number): Promise<Evaluation> {
  const names = Object.keys(checks);
  const errors: unknown[] = [];
  const results = await Promise.all(names.map((name) => runCheck(checks[name] as ReadinessCheck, timeoutMs, errors)));
  const report: ReadinessReport = { ready: true, checks: {} };
  const failures: Record<string, string> = {};
  names.forEach((name, i) => {
    const failure = results[i];
    report.checks[name] = failure ?? "ok";
    if (failure !== undefined) {
      failures[name] = failure;
      report.ready = false;
    }
  });
  report.checks.draining = "no";
  return { report, failures, errors };
}

/** Never rejects: a thrown error becomes "failed" (its cause is kept for the log, not the answer). */
async function runCheck(check: ReadinessCheck, timeoutMs: number, errors: unknown[]): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(check), timeout]);
  } catch (err) {
    errors.push(err);
    return "failed";
  } finally {
    clearTimeout(timer);
  }
}

function reply(req: Request, res: Response, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  // Both response types have these methods; their overloads differ, so call them through one shape.
  const out = res as unknown as {
    writeHead(status: number, headers: Record<string, string | number>): void;
    end(chunk?: string): void;
  };
  out.writeHead(status, {
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  out.end(req.method === "HEAD" ? undefined : text);
}
