import { createPrivateKey, type KeyObject, randomUUID, X509Certificate } from "node:crypto";
import type { Logger } from "pino";
import { verifyEd25519 } from "../../client/protocol/ed25519.js";
import { certificateBindingTranscript } from "../../client/protocol/transcript.js";
import { sha256 } from "../../client/protocol/csr.js";
import { getAgentById } from "../agents/agent-store.js";
import { appendAudit } from "../audit/audit-log.js";
import type { Kysely } from "kysely";
import type { Executor } from "../db/database.js";
import type { Schema } from "../db/schema.js";
import { FailedPreconditionError, InvalidInputError, PermissionDeniedError, RateLimitedError } from "../errors/errors.js";
import type { AgentIdentity } from "../identity/principal.js";
import { TokenBuckets } from "../ratelimit/token-bucket.js";
import {
  type CaCertificate,
  caCertificate,
  createIntermediate,
  createRoot,
  importPrivateKey,
  type IssuedCertificate,
  issueClientCertificate,
  issueServerCertificate,
  newKeyPair,
} from "./authority.js";
import { insertCaCertificate, listCaCertificates, lockCa, retireCurrent, type StoredCaCertificate } from "./ca-store.js";
import type { KeySealer } from "./key-seal.js";
import { spiffeIdOf } from "./spiffe.js";
import { CsrError, validateCsr } from "./x509.js";

/** How the CA is set up (from config). */
export interface CaOptions {
  sealer: KeySealer;
  trustDomain: string;
  agentCertTtlMs: number;
  intermediateTtlMs: number;
  rootTtlMs: number;
  /** A root (PEM certificate and key) to import on first start instead of generating one. */
  importRoot?: { certPem: string; keyPem: string };
  logger: Logger;
}

/** An agent certificate as IssueAgentCertificate returns it. */
export interface AgentCertificate extends IssuedCertificate {
  spiffeId: string;
  trustBundle: Buffer[];
}

/** Root lifetime when generated: ten years (the root key can rotate intermediates for that long). */
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 86_400_000;

/**
 * The internal CA (docs/security.md, "mTLS"): one root, one issuing intermediate, and retired
 * intermediates that stay trusted until they expire. The certificates live in the database,
 * so every replica issues from and trusts the same CA; issuance reads the current intermediate
 * from the table each time (a rotation by any process takes effect at once), and opened keys
 * are cached by fingerprint.
 */
export class CaService {
  readonly #keys = new Map<string, KeyObject>();
  // Issuance proves possession with two signatures: bound it per agent like the handshake.
  readonly #perAgent = new TokenBuckets({ perSecond: 1 / 30, burst: 10 });

  private constructor(
    private readonly db: Kysely<Schema>,
    private readonly options: CaOptions,
    /** The root, the trust anchor every replica and agent pins. */
    readonly root: CaCertificate,
  ) {}

  /**
   * Loads the CA, creating (or importing) the root and an intermediate on first start, under an
   * advisory lock so that replicas starting together create one CA. Throws when the sealed keys
   * do not open with AGW_CA_KEY, or an import names another root than the database holds.
   */
  static async open(db: Kysely<Schema>, options: CaOptions): Promise<CaService> {
    const root = await db.transaction().execute(async (trx) => {
      await lockCa(trx);
      const now = new Date();
      const rows = await listCaCertificates(trx, now);
      const open = (row: StoredCaCertificate) => caCertificate(row.id, row.role, row.certificateDer, row.sealedKey ? openKey(options.sealer, row) : undefined);
      const storedRoot = rows.find((r) => r.role === "root" && r.retiredAt === null);
      let root: CaCertificate;
      if (storedRoot) {
        root = open(storedRoot);
        if (options.importRoot && fingerprintOfPem(options.importRoot.certPem) !== root.fingerprint) {
          throw new Error("AGW_CA_ROOT_CERT is not the root the database already holds; unset it (it is imported on first start only)");
        }
      } else {
        root = options.importRoot ? importedRoot(options.importRoot) : createRoot(options.rootTtlMs, now);
        await insertCaCertificate(trx, stored(root, options.sealer));
        options.logger.info({ caPin: root.fingerprint, imported: Boolean(options.importRoot) }, "internal CA: root created");
      }
      const current = rows.find((r) => r.role === "intermediate" && r.retiredAt === null);
      if (!current || new Date(current.notAfter).getTime() <= now.getTime() + options.agentCertTtlMs) {
        await rotate(trx, root, options, now);
      } else {
        open(current);
      }
      return root;
    });
    return new CaService(db, options, root);
  }

  /** SHA-256 of the root certificate: what agents pass as `--ca-pin`. */
  get pin(): string {
    return this.root.fingerprint;
  }

  /** The trust domain of the SPIFFE ids this CA issues. */
  get trustDomain(): string {
    return this.options.trustDomain;
  }

  /**
   * Retires the issuing intermediate and creates a new one: certificates the old one issued
   * stay valid until they expire (it stays in the trust bundle); new ones come from the new
   * intermediate. Needs the root's key.
   */
  async rotateIntermediate(): Promise<CaCertificate> {
    return await this.db.transaction().execute(async (trx) => {
      await lockCa(trx);
      return await rotate(trx, this.root, this.options, new Date());
    });
  }

  /** The root and every intermediate that has not expired (DER), current first. */
  async trustBundle(): Promise<Buffer[]> {
    const rows = await listCaCertificates(this.db, new Date());
    return [this.root.der, ...rows.filter((r) => r.role === "intermediate").map((r) => Buffer.from(r.certificateDer))];
  }

  /**
   * Issues the session's agent a client certificate for the CSR's key, after checking the CSR
   * strictly and the binding signature against the agent's identity key.
   */
  async issueForAgent(agent: AgentIdentity, csrDer: Uint8Array, bindingSignature: Uint8Array): Promise<AgentCertificate> {
    const waitMs = this.#perAgent.take(agent.agentId);
    if (waitMs > 0) throw new RateLimitedError(`too many certificate requests for this agent: retry after ${Math.ceil(waitMs / 1000)} s`, waitMs);
    let csr: ReturnType<typeof validateCsr>;
    try {
      csr = validateCsr(csrDer);
    } catch (err) {
      if (err instanceof CsrError) throw new InvalidInputError(err.message);
      throw err;
    }
    const record = await getAgentById(this.db, agent.agentId);
    if (!record || record.tenantId !== agent.tenantId) throw new PermissionDeniedError("this agent no longer exists");
    if (record.state === "REVOKED") throw new PermissionDeniedError("this agent is revoked", "AGENT_REVOKED");
    if (record.state !== "ACTIVE") throw new FailedPreconditionError(`this agent is ${record.state}`);
    const transcript = certificateBindingTranscript({ agentId: agent.agentId, spkiSha256: sha256(csr.spkiDer) });
    if (!verifyEd25519(record.identityPublicKey, transcript, bindingSignature)) {
      throw new InvalidInputError("binding_signature does not verify with this agent's identity key over the CSR's public key");
    }
    const issuer = await this.#currentIntermediate();
    const spiffeId = spiffeIdOf(this.options.trustDomain, agent.tenantId, agent.agentId);
    const issued = issueClientCertificate(issuer, csr.spkiDer, spiffeId, this.options.agentCertTtlMs);
    const leaf = new X509Certificate(issued.der);
    await this.db.transaction().execute((trx) =>
      appendAudit(trx, {
        tenantId: agent.tenantId,
        actor: { kind: "agent", agentId: agent.agentId },
        action: "agent.certificate_issued",
        target: `agent:${agent.agentId}`,
        data: { serial: leaf.serialNumber, notAfter: issued.notAfter.toISOString(), issuer: issuer.fingerprint, spiffeId },
      }),
    );
    return { ...issued, spiffeId, trustBundle: await this.trustBundle() };
  }

  /** A serving certificate for this replica, for a key generated here (never stored). */
  async issueServerCertificate(names: readonly string[], ttlMs: number): Promise<{ certPem: string; keyPem: string; notAfter: Date }> {
    const issuer = await this.#currentIntermediate();
    const { privateKey, spkiDer } = newKeyPair();
    const issued = issueServerCertificate(issuer, spkiDer, names, ttlMs);
    // The root goes along: a client that knows only its SHA-256 (--ca-pin) must see it to check the chain.
    const certPem = [issued.der, ...issued.chain, this.root.der].map((der) => new X509Certificate(der).toString()).join("");
    return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), notAfter: issued.notAfter };
  }

  async #currentIntermediate(): Promise<CaCertificate> {
    const rows = await listCaCertificates(this.db, new Date());
    const row = rows.find((r) => r.role === "intermediate" && r.retiredAt === null);
    if (!row?.sealedKey) throw new FailedPreconditionError("the internal CA has no current intermediate: restart a gateway or rotate it");
    let key = this.#keys.get(row.fingerprintSha256);
    if (!key) {
      key = openKey(this.options.sealer, row);
      this.#keys.set(row.fingerprintSha256, key);
    }
    return caCertificate(row.id, "intermediate", row.certificateDer, key);
  }
}

async function rotate(trx: Executor, root: CaCertificate, options: CaOptions, now: Date): Promise<CaCertificate> {
  const intermediate = createIntermediate(root, options.intermediateTtlMs, now);
  await retireCurrent(trx, "intermediate", now);
  await insertCaCertificate(trx, stored(intermediate, options.sealer));
  options.logger.info({ intermediate: intermediate.fingerprint, notAfter: intermediate.x509.validTo }, "internal CA: new issuing intermediate");
  return intermediate;
}

function stored(cert: CaCertificate, sealer: KeySealer): Omit<StoredCaCertificate, "retiredAt"> {
  return {
    id: cert.id,
    role: cert.role,
    certificateDer: cert.der,
    sealedKey: cert.key ? sealer.seal(cert.key.export({ type: "pkcs8", format: "der" }), cert.fingerprint) : null,
    fingerprintSha256: cert.fingerprint,
    notBefore: new Date(cert.x509.validFrom),
    notAfter: new Date(cert.x509.validTo),
  };
}

function openKey(sealer: KeySealer, row: StoredCaCertificate): KeyObject {
  if (!row.sealedKey) throw new Error(`CA certificate ${row.id} has no key here`);
  return createPrivateKey({ key: sealer.open(row.sealedKey, row.fingerprintSha256), format: "der", type: "pkcs8" });
}

function fingerprintOfPem(pem: string): string {
  return caCertificate(randomUUID(), "root", new X509Certificate(pem).raw).fingerprint;
}

/** An imported root: a self-signed CA certificate whose key is the given one. */
function importedRoot(input: { certPem: string; keyPem: string }): CaCertificate {
  const x509 = new X509Certificate(input.certPem);
  const key = importPrivateKey(input.keyPem);
  if (!x509.ca) throw new Error("AGW_CA_ROOT_CERT is not a CA certificate (basicConstraints CA:TRUE)");
  if (!x509.checkIssued(x509) || !x509.verify(x509.publicKey)) throw new Error("AGW_CA_ROOT_CERT is not self-signed");
  if (!x509.checkPrivateKey(key)) throw new Error("AGW_CA_ROOT_KEY does not belong to AGW_CA_ROOT_CERT");
  return caCertificate(randomUUID(), "root", x509.raw, key);
}
