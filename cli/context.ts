/**
 * What a running command works with: its output, its settings (flags > environment > config
 * file) and clients of the admin services. A client may only call the RPCs its command
 * declared (cli/command-table.ts), so the command table the coverage test reads is the truth.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { Client, Interceptor } from "@connectrpc/connect";
import type { Command } from "commander";
import { createAdminClient } from "../client/admin-client.js";
import { createGatewayTransport, type GatewayTransport } from "../client/transport.js";
import { parseDurationMs } from "../client/values.js";
import { type ConnectionFlags, configPath, readConfig, resolveSettings, type Settings } from "./config.js";
import { CliError, EXIT, usage } from "./errors.js";
import { type Io, Output, parseFormat } from "./output.js";

/** The options every command accepts (defined on the program). */
export interface GlobalOptions extends ConnectionFlags {
  format: string;
  quiet?: boolean;
  timeout: string;
}

/** The context of one command invocation. */
export class Run {
  readonly out: Output;
  private cachedSettings: Settings | undefined;
  private readonly transports: GatewayTransport[] = [];

  constructor(
    readonly io: Io,
    readonly globals: GlobalOptions,
    /** "agents approve". */
    readonly path: string,
    private readonly declared: readonly DescMethod[],
  ) {
    this.out = new Output(io, parseFormat(globals.format), globals.quiet === true);
  }

  /** The config file's path. */
  get configPath(): string {
    return configPath(this.io.env);
  }

  /** The resolved settings (read once). */
  settings(): Settings {
    this.cachedSettings ??= resolveSettings(this.globals, this.io.env, readConfig(this.configPath));
    return this.cachedSettings;
  }

  /** The server in use, if it could be resolved (for error messages). */
  serverOrUndefined(): string | undefined {
    return this.cachedSettings?.server;
  }

  /** The API key in use; a clear UNAUTHENTICATED error when there is none. */
  apiKey(): string {
    const settings = this.settings();
    if (settings.apiKey) return settings.apiKey;
    const other = settings.fileServer ? ` (the saved key is for ${settings.fileServer} and is never sent elsewhere)` : "";
    throw new CliError(EXIT.UNAUTHENTICATED, `no API key for ${settings.server}${other}: run \`agwctl login --server ${settings.server}\` or set AGW_API_KEY`);
  }

  /** A client of an admin service on its own connection to the gateway, authenticated with the key. */
  client<S extends DescService>(service: S, settings: Settings = this.settings(), apiKey: string = this.apiKey()): Client<S> {
    const unaryTimeoutMs = parseDurationMs(this.globals.timeout);
    if (unaryTimeoutMs === undefined || unaryTimeoutMs <= 0) throw usage(`--timeout must be a duration like 20s, got "${this.globals.timeout}"`);
    return createAdminClient(service, apiKey, (interceptors) => {
      // TRACEPARENT (W3C, as in the OpenTelemetry environment-carrier spec) ties a script's commands to its trace.
      const transport = createGatewayTransport(settings.server, settings.trust, { unaryTimeoutMs, interceptors: [...interceptors, this.guard()], traceparent: () => process.env.TRACEPARENT });
      this.transports.push(transport);
      return transport.transport;
    });
  }

  /** Why the last TLS connection was refused, if a transport knows. */
  connectionError(): Error | undefined {
    for (const t of this.transports) {
      const error = t.lastConnectionError();
      if (error) return error;
    }
    return undefined;
  }

  /** Closes every connection the command opened. */
  close(): void {
    for (const t of this.transports.splice(0)) t.close();
  }

  private guard(): Interceptor {
    const allowed = new Set(this.declared.map(rpcName));
    return (next) => (req) => {
      // A command calling an RPC it does not declare is a bug in agwctl: the coverage test
      // would then vouch for a table that is not what the commands do.
      if (!allowed.has(rpcName(req.method))) throw new Error(`agwctl bug: \`${this.path}\` calls ${rpcName(req.method)} without declaring it`);
      return next(req);
    };
  }
}

/** "agentgateway.admin.v1.AgentService/ListAgents". */
export function rpcName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** The full command path of a commander command, without the program name ("agents approve"). */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}
