import { type Span, SpanKind, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from "kysely";

/** Longest query text put on a span (the text has placeholders, never the values). */
const MAX_QUERY_TEXT = 2000;

/**
 * Wraps a Kysely dialect so that every statement a traced call runs becomes a CLIENT span
 * under the call's span (OpenTelemetry database conventions: `db.system.name`,
 * `db.operation.name`, `db.collection.name`, `db.query.text`). Only the text with its `$n`
 * placeholders is recorded — bound values (hashes of secrets among them) never are.
 *
 * Statements run outside a traced call (the heartbeat flusher, sweepers) get no span: with no
 * parent they would be a stream of one-span traces every second. Used only when tracing is on.
 */
export function tracedDialect(inner: Dialect, tracer: Tracer): Dialect {
  return {
    createAdapter: () => inner.createAdapter(),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db) => inner.createIntrospector(db),
    createDriver: () => new TracedDriver(inner.createDriver(), tracer),
  };
}

class TracedConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    private readonly tracer: Tracer,
  ) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    // Outside a traced call the statement runs as if unwrapped: one context lookup, nothing else.
    if (!inTracedCall()) return this.inner.executeQuery<R>(query);
    return traced(
      this.tracer,
      summarize(query.sql),
      () => this.inner.executeQuery<R>(query),
      (span, result) => {
        if (result.numAffectedRows !== undefined) span.setAttribute("db.response.affected_rows", Number(result.numAffectedRows));
        span.setAttribute("db.response.returned_rows", result.rows.length);
      },
    );
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

class TracedDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly tracer: Tracer,
  ) {
    // Savepoints exist only when the inner driver has them (Kysely checks for the methods).
    if (inner.savepoint) this.savepoint = (conn, name, compile) => inner.savepoint?.(unwrap(conn), name, compile) ?? Promise.resolve();
    if (inner.rollbackToSavepoint)
      this.rollbackToSavepoint = (conn, name, compile) => inner.rollbackToSavepoint?.(unwrap(conn), name, compile) ?? Promise.resolve();
    if (inner.releaseSavepoint) this.releaseSavepoint = (conn, name, compile) => inner.releaseSavepoint?.(unwrap(conn), name, compile) ?? Promise.resolve();
  }

  savepoint?: Driver["savepoint"];
  rollbackToSavepoint?: Driver["rollbackToSavepoint"];
  releaseSavepoint?: Driver["releaseSavepoint"];

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new TracedConnection(await this.inner.acquireConnection(), this.tracer);
  }

  beginTransaction(conn: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return traced(this.tracer, { operation: "BEGIN" }, () => this.inner.beginTransaction(unwrap(conn), settings));
  }

  commitTransaction(conn: DatabaseConnection): Promise<void> {
    return traced(this.tracer, { operation: "COMMIT" }, () => this.inner.commitTransaction(unwrap(conn)));
  }

  rollbackTransaction(conn: DatabaseConnection): Promise<void> {
    return traced(this.tracer, { operation: "ROLLBACK" }, () => this.inner.rollbackTransaction(unwrap(conn)));
  }

  releaseConnection(conn: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(unwrap(conn));
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

function unwrap(conn: DatabaseConnection): DatabaseConnection {
  return conn instanceof TracedConnection ? conn.inner : conn;
}

interface QuerySummary {
  operation: string;
  collection?: string;
  text?: string;
}

function inTracedCall(): boolean {
  return trace.getActiveSpan()?.isRecording() === true;
}

function traced<T>(tracer: Tracer, query: QuerySummary, run: () => Promise<T>, onResult?: (span: Span, result: T) => void): Promise<T> {
  if (!inTracedCall()) return run();
  const name = query.collection ? `${query.operation} ${query.collection}` : query.operation;
  return tracer.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes: attributesOf(query) }, async (span) => {
    try {
      const result = await run();
      onResult?.(span, result);
      return result;
    } catch (err) {
      // The SQLSTATE, not the message: a constraint message can quote a row's values.
      const code = typeof (err as { code?: unknown }).code === "string" ? (err as { code: string }).code : "error";
      span.setAttribute("db.response.status_code", code);
      span.setAttribute("error.type", code);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  });
}

function attributesOf(query: QuerySummary) {
  return {
    "db.system.name": "postgresql",
    "db.operation.name": query.operation,
    ...(query.collection ? { "db.collection.name": query.collection } : {}),
    ...(query.text ? { "db.query.text": query.text } : {}),
  };
}

const TARGET = /^\s*(?:insert\s+into|update|delete\s+from)\s+"?([a-z_][a-z0-9_]*)"?/i;
const FROM = /\bfrom\s+"?([a-z_][a-z0-9_]*)"?/i;

/** The operation (first keyword) and the main table of a statement, for the span name. */
export function summarize(text: string): QuerySummary {
  const operation = (/^\s*([a-z]+)/i.exec(text)?.[1] ?? "QUERY").toUpperCase();
  const collection = operation === "SELECT" ? FROM.exec(text)?.[1] : TARGET.exec(text)?.[1];
  return { operation, ...(collection ? { collection } : {}), text: text.length > MAX_QUERY_TEXT ? `${text.slice(0, MAX_QUERY_TEXT)}…` : text };
}
