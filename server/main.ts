import { isClusterPrimary, runPrimary } from "./app/cluster.js";
import { startGateway } from "./app/gateway.js";
import { CaSetupError, openCa } from "./ca/ca-setup.js";
import type { BootstrapResult } from "./tenancy/bootstrap.js";
import { ConfigError, configTableMarkdown, loadConfig } from "./config/config.js";
import { openDatabase } from "./db/database.js";
import { migrateDatabase } from "./db/migrate.js";
import { createLogger } from "./observability/logger.js";

const USAGE = `usage: agentgateway [serve|migrate|ca|config-table] [--flag value …]
  serve         run the gateway (default)
  migrate       apply pending database migrations and exit
  ca pin        print the internal CA's SHA-256 pin (creating the CA if there is none yet)
  ca rotate     retire the issuing intermediate and create a new one (needs AGW_CA_KEY)
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
      const { applied, newer } = await migrateDatabase(database, logger);
      console.log(applied.length ? `applied: ${applied.join(", ")}` : newer.length ? `database is newer than this build (${newer.join(", ")}); nothing to do` : "database is up to date");
    } finally {
      await database.close();
    }
    return 0;
  }
  if (command === "ca") {
    return await caCommand(config, logger, args.filter((a) => !a.startsWith("-"))[0]);
  }
  if (command !== "serve") {
    console.error(`unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  if (isClusterPrimary(config)) return await runPrimary(config, logger);
  const gateway = await startGateway(config, logger);
  announce(gateway.url, gateway.bootstrap, gateway.caPin);
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

/** The human-facing start banner. The admin and system keys are printed here once, never logged. */
function announce(url: string, bootstrap: BootstrapResult, caPin: string | undefined): void {
  const lines = [`AgentGateway listening on ${url} (gRPC, gRPC-Web and Connect); web admin at ${url}/admin/`];
  if (caPin) lines.push(`Internal CA root SHA-256 (agents: --ca-pin ${caPin})`);
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
  if (bootstrap.systemKey && bootstrap.systemKeyGenerated) {
    lines.push(
      "Created the provider's system key, for TenantService and `agwctl tenants` only (shown only now, store it apart from tenant keys):",
      "",
      `    ${bootstrap.systemKey}`,
      "",
    );
  } else if (bootstrap.systemKey) {
    lines.push("Created the provider's system key from AGW_BOOTSTRAP_SYSTEM_KEY.");
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** `ca pin` / `ca rotate`: run against the database, beside running gateways (they pick up a rotation at their next issuance). */
async function caCommand(config: ReturnType<typeof loadConfig>, logger: ReturnType<typeof createLogger>, sub: string | undefined): Promise<number> {
  if (sub !== "pin" && sub !== "rotate") {
    console.error(`usage: agentgateway ca pin|rotate\n${USAGE}`);
    return 2;
  }
  if (!config.ca) throw new ConfigError("the internal CA needs AGW_CA_KEY or AGW_CA_KEY_FILE");
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2, logger });
  try {
    await migrateDatabase(database, logger);
    const ca = await openCa(database, config.ca, logger);
    if (sub === "rotate") {
      const next = await ca.rotateIntermediate();
      console.log(`new issuing intermediate ${next.fingerprint}, valid until ${next.x509.validTo}; the previous one stays trusted until it expires`);
    }
    console.log(ca.pin);
  } finally {
    await database.close();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof ConfigError || err instanceof CaSetupError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  },
);
