/**
 * What the observability layer costs per call, in one process, against a same-run baseline:
 * the same unary call (grpc.health.v1 Check, as Connect hands it to the interceptors, answered at
 * once by a stub handler, so the network, the codec and the handler drop out) with
 *   - no interceptor (baseline),
 *   - the telemetry interceptor with tracing OFF (request id, log context, metrics — what every
 *     gateway runs),
 *   - the telemetry interceptor with tracing ON (a SERVER span per call continuing the caller's
 *     traceparent, batch processor, discarding exporter).
 * And for statements: a query through a Kysely driver as the gateway opens it with tracing off
 * (not wrapped: the baseline) and with tracing on, outside a traced call (wrapped, no span) and
 * inside one (a CLIENT span). Rounds interleave the modes; ns/call is the median of the rounds.
 *
 *   npx tsx bench/telemetry-overhead.ts      (BENCH_CALLS, BENCH_ROUNDS change the bounds)
 */
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import { createContextValues, type Interceptor, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { context, trace } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
} from "kysely";
import { pino } from "pino";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { tracedDialect } from "../server/observability/db-tracing.js";
import { telemetryInterceptor } from "../server/observability/rpc-telemetry.js";
import { createTracing } from "../server/observability/tracing.js";
import { machineFacts, writeSection, commandLine } from "./lib/results.js";
import { fmt, table } from "./lib/stats.js";

const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** Drops every span (the cost measured is the gateway's, not a collector's). */
class DiscardingExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: (r: { code: ExportResultCode }) => void): void {
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const logger = pino({ level: "info" }, new Writable({ write: (_chunk, _encoding, done) => done() }));
const tracing = await createTracing({
  otlpEndpoint: undefined,
  sampleRatio: 1,
  instanceId: "bench",
  processors: [new BatchSpanProcessor(new DiscardingExporter(), { maxQueueSize: 100_000 })],
});
if (!tracing) throw new Error("tracing did not start");

/** A unary request as Connect hands it to the interceptors (fresh headers and context values per call). */
function request(headers: Record<string, string>): UnaryRequest<DescMessage, DescMessage> {
  return {
    stream: false,
    service: Health,
    method: Health.method.check,
    requestMethod: "POST",
    url: "http://bench/grpc.health.v1.Health/Check",
    signal: new AbortController().signal,
    header: new Headers(headers),
    contextValues: createContextValues(),
    message: create(HealthCheckRequestSchema, { service: "" }),
  } as UnaryRequest<DescMessage, DescMessage>;
}

/** The handler's answer: returned at once, so only the interceptor's own work is measured. */
const answer = async (_req: UnaryRequest<DescMessage, DescMessage>): Promise<UnaryResponse<DescMessage, DescMessage>> =>
  ({
    stream: false,
    service: Health,
    method: Health.method.check,
    header: new Headers(),
    trailer: new Headers(),
    message: create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }),
  }) as never;

/** A connection that answers at once: only the wrapper's cost is left to measure. */
const instant: DatabaseConnection = {
  executeQuery: async <R>() => ({ rows: [] as R[] }) as QueryResult<R>,
  streamQuery: async function* () {},
};
const instantDriver: Driver = {
  init: async () => {},
  acquireConnection: async () => instant,
  beginTransaction: async () => {},
  commitTransaction: async () => {},
  rollbackTransaction: async () => {},
  releaseConnection: async () => {},
  destroy: async () => {},
};
const instantDialect: Dialect = {
  createAdapter: () => new PostgresAdapter(),
  createDriver: () => instantDriver,
  createQueryCompiler: () => new PostgresQueryCompiler(),
  createIntrospector: (db) => new PostgresIntrospector(db),
};

interface Mode {
  name: string;
  run(n: number): Promise<void>;
}

async function rpcMode(name: string, interceptor: Interceptor | undefined, headers: Record<string, string> = {}): Promise<Mode> {
  const call = interceptor ? interceptor(answer as never) : answer;
  return {
    name,
    run: async (n) => {
      for (let i = 0; i < n; i++) await call(request(headers) as never);
    },
  };
}

async function queryMode(name: string, dialect: Dialect, insideSpan: boolean): Promise<Mode> {
  const driver = dialect.createDriver();
  const conn = await driver.acquireConnection();
  const query = CompiledQuery.raw("select id, state from agents where tenant_id = $1 and id = $2", ["t", "a"]);
  const tracer = tracing?.tracer;
  return {
    name,
    run: async (n) => {
      const loop = async () => {
        for (let i = 0; i < n; i++) await conn.executeQuery(query);
      };
      if (insideSpan && tracer)
        await tracer.startActiveSpan("call", async (span) => {
          await loop();
          span.end();
        });
      else await loop();
    },
  };
}

async function main(): Promise<void> {
  const rpc = [
    await rpcMode("unary call, no interceptor (baseline)", undefined),
    await rpcMode("unary call, telemetry with tracing off (metrics, request id, log context)", telemetryInterceptor(undefined, logger)),
    await rpcMode("unary call, telemetry with tracing on (span per call, caller's traceparent)", telemetryInterceptor(tracing?.tracer, logger), {
      traceparent: TRACEPARENT,
    }),
  ];
  const queries = [
    await queryMode("query, tracing off: driver not wrapped (baseline)", instantDialect, false),
    await queryMode(
      "query, tracing on, outside a traced call (wrapped, no span)",
      tracedDialect(instantDialect, tracing?.tracer ?? trace.getTracer("x")),
      false,
    ),
    await queryMode("query, tracing on, inside a traced call (CLIENT span)", tracedDialect(instantDialect, tracing?.tracer ?? trace.getTracer("x")), true),
  ];
  const all = [...rpc, ...queries];
  const perCall = new Map<string, number[]>(all.map((m) => [m.name, []]));
  for (const m of all) await m.run(Math.min(2000, CALLS)); // warm-up (JIT)
  for (let round = 0; round < ROUNDS; round++) {
    for (const m of all) {
      const t0 = process.hrtime.bigint();
      await m.run(CALLS);
      const ns = Number(process.hrtime.bigint() - t0) / CALLS;
      perCall.get(m.name)?.push(ns);
      await tracing?.flush();
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const rows = (group: Mode[]) => {
    const base = median(perCall.get(group[0]?.name ?? "") ?? []);
    return group.map((m) => {
      const xs = perCall.get(m.name) ?? [];
      const med = median(xs);
      return [
        m.name,
        fmt(med / 1000, 2),
        `${fmt(Math.min(...xs) / 1000, 2)}–${fmt(Math.max(...xs) / 1000, 2)}`,
        m === group[0] ? "–" : `${med >= base ? "+" : "−"}${fmt(Math.abs(med - base) / 1000, 2)}`,
      ];
    });
  };
  const header = ["mode", "µs / call (median)", "min–max", "over baseline (µs)"];
  const result = [
    `### Run ${new Date().toISOString()}`,
    "",
    machineFacts({ calls: `${CALLS} per mode per round, ${ROUNDS} rounds, interleaved` }),
    "",
    table(header, rows(rpc)),
    "",
    table(header, rows(queries)),
    "",
    `Run: \`${commandLine()}\``,
  ].join("\n");
  console.log(result);
  writeSection(
    "## Telemetry overhead",
    [
      "Per-call cost of the observability layer, in one process, no network and no database, so only its own work is left:",
      "a unary call as Connect hands it to the interceptors, answered at once, without and with the telemetry interceptor (tracing off and on),",
      "and a statement through a Kysely driver that answers at once, as the gateway opens it with tracing off (not wrapped) and on.",
      "With tracing off the gateway creates no tracer provider, creates no spans, parses no `traceparent` and does not wrap the",
      "database driver, so the tracing-off rows are the whole price of metrics, request ids and log context. `bench/telemetry-overhead.ts`.",
    ].join("\n"),
    result,
  );
  await tracing?.shutdown();
  context.disable();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
