import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { AppContext } from "../app/context.js";
import type { CaConfig, Config } from "../config/config.js";
import type { Database } from "../db/database.js";
import type { Listener, ListenTlsOptions } from "../http/listener.js";
import { CaService, DEFAULT_ROOT_TTL_MS } from "./ca-service.js";
import { KeySealer, SealError } from "./key-seal.js";
import { certificatePem } from "./x509.js";

/** Lifetime of a serving certificate from the internal CA; renewed in place at half of it. */
export const SERVING_CERT_TTL_MS = 7 * 86_400_000;

/** Thrown when the CA cannot be opened: the message says what to fix. */
export class CaSetupError extends Error {
  override name = "CaSetupError";
}

/** The sealing secret from AGW_CA_KEY or AGW_CA_KEY_FILE. */
export function caSealer(config: CaConfig): KeySealer {
  let secret: string;
  if ("value" in config.key) secret = config.key.value;
  else {
    try {
      secret = readFileSync(config.key.file, "utf8").trim();
    } catch (err) {
      throw new CaSetupError(`cannot read AGW_CA_KEY_FILE ${config.key.file}: ${(err as Error).message}`);
    }
  }
  try {
    return new KeySealer(secret);
  } catch (err) {
    throw new CaSetupError(`AGW_CA_KEY_FILE: ${(err as Error).message}`);
  }
}

/** Opens (or creates, or imports) the internal CA from config; errors name the setting to fix. */
export async function openCa(database: Database, config: CaConfig, logger: Logger): Promise<CaService> {
  const importRoot = config.importRoot
    ? { certPem: readFileSync(config.importRoot.certFile, "utf8"), keyPem: readFileSync(config.importRoot.keyFile, "utf8") }
    : undefined;
  try {
    return await CaService.open(database.db, {
      sealer: caSealer(config),
      trustDomain: config.trustDomain,
      agentCertTtlMs: config.agentCertTtlMs,
      intermediateTtlMs: config.intermediateTtlMs,
      rootTtlMs: DEFAULT_ROOT_TTL_MS,
      ...(importRoot ? { importRoot } : {}),
      logger,
    });
  } catch (err) {
    if (err instanceof SealError) throw new CaSetupError(err.message);
    throw err;
  }
}

/**
 * The listener's TLS: AGW_TLS_CERT/KEY or the CA-issued serving certificate; in mtls/both mode
 * client certificates are requested (never required at the handshake: enrollment has none),
 * verified against the root, and each connection passes the certificate gate.
 */
export function listenerTls(config: Config, app: AppContext, serving: { certPem: string; keyPem: string } | undefined): ListenTlsOptions | undefined {
  const base = serving
    ? { cert: serving.certPem, key: serving.keyPem }
    : config.tls
      ? { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }
      : undefined;
  if (!base) return undefined;
  if (config.agentAuth === "session" || !app.ca) return base;
  const gate = app.certificateGate;
  return { ...base, ca: certificatePem(app.ca.root.der), requestClientCert: true, admitClient: (socket) => gate.admit(socket) };
}

/** Re-issues the serving certificate at half of its lifetime and swaps it in for new connections. */
export function renewServingCertificate(ca: CaService, listener: Listener, names: readonly string[], notAfter: Date, logger: Logger): { timer: NodeJS.Timeout } {
  const handle: { timer: NodeJS.Timeout } = { timer: setTimeout(() => {}, 0) };
  const schedule = (until: Date) => {
    const delay = Math.max(60_000, (until.getTime() - Date.now()) / 2);
    handle.timer = setTimeout(() => {
      ca.issueServerCertificate(names, SERVING_CERT_TTL_MS).then(
        (next) => {
          listener.setCertificate(next.certPem, next.keyPem);
          logger.info({ notAfter: next.notAfter.toISOString() }, "serving certificate renewed");
          schedule(next.notAfter);
        },
        (err) => {
          logger.error({ err }, "renewing the serving certificate failed; retrying in a minute");
          schedule(new Date(Date.now() + 120_000));
        },
      );
    }, delay);
    handle.timer.unref();
  };
  schedule(notAfter);
  return handle;
}
