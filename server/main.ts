import { isClusterPrimary, runPrimary } from "./app/cluster.js";
import { startGateway } from "./app/gateway.js";
import { ConfigError, configTableMarkdown, loadConfig } from "./config/config.js";
import { migrateToLatest, openDatabase } from "./db/database.js";
import { createLogger } from "./observability/logger.js";

const USAGE = `usage: agentgateway [serve|migrate|config-table] [--flag value …]
  serve         run the gateway (default)
  migrate       apply pending database migrations and exit
  config-table  print the configuration table (Markdown)
Every setting is an environment variable or a flag; see README.md, "Configuration".`;

async function main(argv: string[]): Promise<number> {
  const command = argv[0] && !argv[0].startsWith("-") ? argv[0] : "serve";
  const args = command === argv[0] ? argv.slice(1) : argv;
  if (command === "help" || args.includes("--help")) {
    console.log(USAGE);
    return 0;
  }
  if (command === "config-table") {
    console.log(configTableMarkdown());
    return 0;
  }
  const config = loadConfig({}, process.env, args);
  const logger = createLogger(config.logLevel);
  if (command === "migrate") {
    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2, logger });
    try {
      const applied = await migrateToLatest(database.db);
      console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
    } finally {
      await database.close();
    }
    return 0;
  }
  if (command !== "serve") {
    console.error(`unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  if (isClusterPrimary(config)) return await runPrimary(config, logger);
  const gateway = await startGateway(config, logger);
  announce(gateway.url, gateway.bootstrap);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down");
      gateway.stop().then(resolve, (err) => {
        logger.error({ err }, "shutdown failed");
        resolve();
      });
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  return 0;
}

/** The human-facing start banner. The admin key is printed here once, never logged. */
function announce(url: string, bootstrap: { tenantName: string; adminKey: string | undefined; adminKeyGenerated: boolean }): void {
  const lines = [`AgentGateway listening on ${url} (gRPC, gRPC-Web and Connect); web admin at ${url}/admin/`];
  if (bootstrap.adminKey && bootstrap.adminKeyGenerated) {
    lines.push(
      `First start: created tenant "${bootstrap.tenantName}" and its admin API key (shown only now, store it safely):`,
      "",
      `    ${bootstrap.adminKey}`,
      "",
      `Try: npx buf curl --http2-prior-knowledge -H "Authorization: Bearer <key>" ${url}/agentgateway.admin.v1.ApiKeyService/WhoAmI`,
    );
  } else if (bootstrap.adminKey) {
    lines.push(`First start: created tenant "${bootstrap.tenantName}" with the admin key from AGW_BOOTSTRAP_ADMIN_KEY.`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  },
);
