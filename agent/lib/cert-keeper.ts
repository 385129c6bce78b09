import { X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { createCertificateRequest } from "../../client/protocol/csr.js";
import { Reason, reasonOf } from "../../client/reasons.js";
import type { ClientCertificate } from "../../client/transport.js";
import { readIfExists, writeFileAtomic } from "./atomic-file.js";
import { type GatewayClient, type Identity, type Session, withSession } from "./direct.js";
import { FILES, type StateStore } from "./state.js";

/** What the certificate keeper needs. */
export interface CertificateKeeperOptions {
  client: GatewayClient;
  identity: Identity;
  agentId: string;
  store: StateStore;
  logger: Logger;
  /** Drops the transport's connection so the next call presents the current certificate. */
  reconnect(): void;
}

interface Held extends ClientCertificate {
  notBefore: number;
  notAfter: number;
}

/**
 * The agent's mTLS client certificate (docs/agent.md, "mTLS"). A fresh ECDSA P-256 TLS key is
 * generated on the host for every certificate (it never leaves the host; the identity key
 * binds it), the certificate is requested with IssueAgentCertificate over the session, kept in
 * tls-cert.pem / tls-key.pem (0600), presented on every new connection, and renewed at half of
 * its lifetime, as SPIRE agents do. A certificate the gateway refuses (at the TLS handshake:
 * revoked or expired; at an RPC: not this agent's) is dropped: the next connection goes without
 * one, which is how a revoked agent learns it was revoked (its handshake is refused).
 * A gateway without a CA (FAILED_PRECONDITION) or an older one (UNIMPLEMENTED) turns it off.
 */
export class CertificateKeeper {
  private held: Held | undefined;
  private disabled = false;
  private changed = false;

  constructor(private readonly options: CertificateKeeperOptions) {}

  /** The certificate for a new connection, if one is usable. */
  current(): ClientCertificate | undefined {
    const held = this.held;
    if (!held || held.notAfter <= Date.now()) return undefined;
    return { cert: held.cert, key: held.key };
  }

  /** When the current certificate should be renewed (ms epoch), if there is one. */
  renewAt(): number | undefined {
    return this.held ? this.held.notBefore + (this.held.notAfter - this.held.notBefore) / 2 : undefined;
  }

  /** Whether the gateway issues certificates at all (false after FAILED_PRECONDITION/UNIMPLEMENTED). */
  get enabled(): boolean {
    return !this.disabled;
  }

  /** Loads the certificate a previous run stored, if it is still valid. */
  async load(): Promise<void> {
    const { store } = this.options;
    const [cert, key] = await Promise.all([readIfExists(store.path(FILES.tlsCert)), readIfExists(store.path(FILES.tlsKey))]);
    if (!cert || !key) return;
    try {
      const held = holding(cert, key);
      if (held.notAfter > Date.now()) this.held = held;
    } catch {
      // A damaged file: a new certificate is requested.
    }
  }

  /**
   * Makes sure a certificate is held and not past its renewal point: requests one with the
   * session otherwise. Errors of the request (revoked, …) propagate like any RPC's.
   */
  async ensure(session: Session): Promise<void> {
    if (this.disabled) return;
    const renewAt = this.renewAt();
    if (this.held && renewAt !== undefined && Date.now() < renewAt && this.held.notAfter > Date.now()) return;
    await this.issue(session);
  }

  /** Requests a new certificate now (renewal). */
  async issue(session: Session): Promise<void> {
    const { client, identity, agentId, store, logger } = this.options;
    const request = createCertificateRequest(agentId, identity.privateKey);
    let res: Awaited<ReturnType<GatewayClient["issueAgentCertificate"]>>;
    try {
      res = await client.issueAgentCertificate(
        { csrDer: request.csrDer, bindingSignature: request.bindingSignature },
        withSession(session),
      );
    } catch (err) {
      const code = err instanceof ConnectError ? err.code : undefined;
      if (code === Code.FailedPrecondition || code === Code.Unimplemented) {
        this.disabled = true;
        logger.info({ reason: (err as ConnectError).rawMessage }, "the gateway issues no client certificates: continuing with the session only");
        return;
      }
      throw err;
    }
    const pem = [res.certificateDer, ...res.chainDer].map((der) => new X509Certificate(der).toString()).join("");
    // Key first: a certificate without its key would be useless after a crash.
    await writeFileAtomic(store.path(FILES.tlsKey), request.privateKeyPem);
    await writeFileAtomic(store.path(FILES.tlsCert), pem);
    this.held = holding(pem, request.privateKeyPem);
    this.changed = true;
    logger.info(
      { spiffeId: res.spiffeId, notAfter: res.notAfter ? timestampDate(res.notAfter).toISOString() : undefined },
      "client certificate issued",
    );
  }

  /** True once after the certificate changed: the caller reconnects the transport. */
  takeChanged(): boolean {
    const changed = this.changed;
    this.changed = false;
    return changed;
  }

  /** The gateway refused the certificate: forget it (files too) and reconnect without it. */
  refused(why: string): void {
    if (!this.held) return;
    this.options.logger.warn({ why }, "the gateway refused the client certificate: dropping it");
    this.held = undefined;
    this.changed = true;
    const { store } = this.options;
    void Promise.all([fs.rm(store.path(FILES.tlsCert), { force: true }), fs.rm(store.path(FILES.tlsKey), { force: true })]).catch(() => {});
  }

  /** Drops the certificate when an RPC says it is missing or not this agent's. */
  interceptor(): Interceptor {
    return (next) => async (req) => {
      try {
        return await next(req);
      } catch (err) {
        const reason = reasonOf(err);
        if (reason === Reason.CERTIFICATE_MISMATCH || reason === Reason.CLIENT_CERTIFICATE_REQUIRED) this.refused(reason);
        throw err;
      }
    };
  }
}

function holding(cert: string, key: string): Held {
  const x509 = new X509Certificate(cert);
  return { cert, key, notBefore: new Date(x509.validFrom).getTime(), notAfter: new Date(x509.validTo).getTime() };
}
