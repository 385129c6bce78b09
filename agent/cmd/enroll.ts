import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Code } from "@connectrpc/connect";
import { AgentState } from "../../gen/agentgateway/v1/common_pb.js";
import { verificationCode } from "../../client/protocol/verification-code.js";
import { Reason, reasonOf } from "../../client/reasons.js";
import { Backoff, sleep } from "../lib/backoff.js";
import { gatewayClient, handshake, type GatewayClient, type Identity, register } from "../lib/direct.js";
import { asConnectError, classify, EXIT, ExitError } from "../lib/errors.js";
import { agentName, parseDuration, parseLabels, usageError } from "../lib/flags.js";
import { hostFacts } from "../lib/host.js";
import { parseReleaseKeys } from "../lib/manifest.js";
import { type AgentStateFile, newState, StateStore } from "../lib/state.js";
import { checkServerUrl, createGatewayTransport, TrustError } from "../../client/transport.js";
import { AGENT_VERSION } from "../lib/version.js";
import { COMMON_FLAGS, humanDuration, loggerOf, protocolOf, stateDirOf, TRUST_FLAGS, trustOf } from "./common.js";

export const ENROLL_USAGE = `agw-agent enroll --server URL --token TOKEN [--name NAME] [--labels k=v,…]
                 [--state-dir DIR] [--ca-file FILE | --ca-pin SHA256 …] [--release-key HEX …] [--wait]
  Generates the identity key on this host, registers it with the enrollment token, prints the
  verification code for the operator, and with --wait waits until an operator approves it.
  --token-file FILE or AGW_ENROLLMENT_TOKEN keep the token out of the process list.
  --wait-timeout DUR   give up waiting after DUR (exit 75; run enroll --wait again to resume)`;

/** `agw-agent enroll`: returns the exit code. */
export async function enroll(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...COMMON_FLAGS,
      ...TRUST_FLAGS,
      token: { type: "string" },
      "token-file": { type: "string" },
      name: { type: "string" },
      labels: { type: "string" },
      "release-key": { type: "string", multiple: true },
      wait: { type: "boolean" },
      "wait-timeout": { type: "string" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(ENROLL_USAGE);
    return EXIT.OK;
  }
  const dir = stateDirOf(values["state-dir"]);
  const logger = loggerOf(values["log-level"] ?? "warn");
  const store = new StateStore(dir);
  await store.init();
  let state = await store.load();
  const trust = trustOf(values, state);
  const server = values.server ?? state?.server;
  if (!server) throw usageError("enroll needs --server URL");
  try {
    checkServerUrl(server, trust);
  } catch (err) {
    if (err instanceof TrustError) throw usageError(err.message);
    throw err;
  }
  const waitTimeoutMs = values["wait-timeout"] ? parseDuration("wait-timeout", values["wait-timeout"]) : 0;
  let releaseKeys: string[];
  try {
    releaseKeys = parseReleaseKeys(values["release-key"] ?? []).map((k) => Buffer.from(k).toString("hex"));
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const transport = createGatewayTransport(server, trust, { protocol: protocolOf(values.protocol) });
  const client = gatewayClient(transport.transport);
  try {
    let identity: Identity;
    if (state) {
      if (state.revoked) throw new ExitError(EXIT.REVOKED, `agent ${state.agentId} in ${dir} was revoked (${state.revoked.reason})`);
      if (state.server !== server) throw usageError(`${dir} is already enrolled with ${state.server}; use another --state-dir`);
      const loaded = await store.loadIdentity();
      if (!loaded) throw new ExitError(EXIT.IDENTITY_UNUSABLE, `${dir}/identity.key is missing; the enrollment cannot be used`);
      identity = loaded;
      if (state.approvedAt) {
        console.log(`Already enrolled and approved: agent ${state.agentId} ("${state.name}"). Start it with: agw-agent run --state-dir ${dir}`);
        return EXIT.OK;
      }
      console.log(`Already registered as agent ${state.agentId} ("${state.name}"), awaiting approval.`);
    } else {
      const token = tokenOf(values);
      const name = agentName(values.name);
      const labels = parseLabels(values.labels);
      // The key is generated and written before Register so a registered key is never lost;
      // a retry after a failed attempt reuses it.
      identity = (await store.loadIdentity()) ?? (await store.createIdentity());
      const registration = await registerWithRetries(client, { token, identity, name, host: hostFacts(AGENT_VERSION, labels) }, () =>
        transport.lastConnectionError(),
      );
      const expected = verificationCode(identity.publicKey);
      if (registration.verificationCode && registration.verificationCode !== expected) {
        // The gateway derived its code from another key than ours: someone swapped it in transit.
        throw new ExitError(
          EXIT.FAILURE,
          `the gateway's verification code ${registration.verificationCode} does not match this key's ${expected}: do not approve; check the connection to the gateway`,
        );
      }
      state = newState({
        server,
        agentId: registration.agentId,
        tenantId: registration.tenantId,
        name,
        labels,
        verificationCode: expected,
        tls: { ...(trust.caFile ? { caFile: trust.caFile } : {}), pins: trust.pins },
        ...(trust.allowInsecureHttp ? { allowInsecureHttp: true } : {}),
        releaseKeys,
      });
      await store.save(state);
      console.log(`Registered with ${server} as agent ${registration.agentId} ("${name}", tenant ${registration.tenantId}).`);
      if (registration.state === AgentState.ACTIVE) {
        state.approvedAt = new Date().toISOString();
        await store.save(state);
        console.log(`Verification code: ${expected}`);
        console.log(`No approval needed. Start it with: agw-agent run --state-dir ${dir}`);
        return EXIT.OK;
      }
    }
    console.log(`Verification code: ${state.verificationCode}`);
    console.log(`An operator must compare this code with the one the gateway shows for agent ${state.agentId} and approve it.`);
    if (!values.wait) {
      console.log(`Then start it with: agw-agent run --state-dir ${dir}   (or wait here: agw-agent enroll --wait --state-dir ${dir})`);
      return EXIT.OK;
    }
    return await waitForApproval(client, store, state, identity, waitTimeoutMs);
  } finally {
    transport.close();
    logger.flush();
  }
}

function tokenOf(values: { token?: string; "token-file"?: string }): string {
  if (values.token) return values.token;
  if (values["token-file"]) return readFileSync(values["token-file"], "utf8").trim();
  const env = process.env.AGW_ENROLLMENT_TOKEN;
  if (env) return env.trim();
  throw usageError("enroll needs --token TOKEN (or --token-file FILE, or AGW_ENROLLMENT_TOKEN)");
}

/** Node/OpenSSL messages of a certificate the CA file does not vouch for. */
const TLS_TRUST_FAILURE = /certificate|self[- ]signed|unable to verify|altnames|ERR_TLS_CERT/i;

/** Register, retrying only what may succeed later (network, overload); token errors are final. */
async function registerWithRetries(client: GatewayClient, input: Parameters<typeof register>[1], connectionError: () => Error | undefined) {
  const backoff = new Backoff({ initialMs: 1000, maxMs: 15_000, floorMs: 200 });
  for (let attempt = 1; ; attempt++) {
    try {
      return await register(client, input);
    } catch (err) {
      const error = asConnectError(err);
      const verdict = classify(err);
      // A gateway we must not trust will not become trustworthy by retrying.
      const cause = connectionError();
      if (cause || TLS_TRUST_FAILURE.test(error.rawMessage)) {
        throw new ExitError(EXIT.FAILURE, `refusing the gateway's TLS certificate: ${(cause ?? error).message}. Check --ca-file / --ca-pin.`);
      }
      switch (error.code) {
        case Code.AlreadyExists:
          throw new ExitError(
            EXIT.FAILURE,
            `the gateway says this identity key is already registered (${error.rawMessage}). If an earlier enroll registered it but its answer was lost, the agent id is unknown here: ask an operator to retire that pending agent, delete ${"identity.key"} from the state directory, and enroll again with a fresh token.`,
          );
        case Code.Unauthenticated:
          throw new ExitError(EXIT.FAILURE, `enrollment refused: ${error.rawMessage}`);
        case Code.PermissionDenied:
          // Register uses PERMISSION_DENIED both for a revoked key and for a pinned-name mismatch.
          throw new ExitError(reasonOf(error) === Reason.AGENT_REVOKED ? EXIT.REVOKED : EXIT.FAILURE, `enrollment refused: ${error.rawMessage}`);
        case Code.InvalidArgument:
          throw new ExitError(EXIT.USAGE, `enrollment refused: ${error.rawMessage}`);
        default:
          break;
      }
      if (attempt >= 6) throw new ExitError(EXIT.TEMPFAIL, `could not register after ${attempt} attempts: ${error.rawMessage}`);
      const delay = backoff.next(verdict.kind === "transient" ? (verdict.retryAfterMs ?? 0) : 0);
      process.stderr.write(`register failed (${error.rawMessage}); retrying in ${humanDuration(delay)}\n`);
      await sleep(delay);
    }
  }
}

/**
 * Polls the handshake until the gateway stops answering "awaiting approval", with backoff
 * (1 s doubling to 30 s, jittered) and one progress line per check.
 */
async function waitForApproval(client: GatewayClient, store: StateStore, state: AgentStateFile, identity: Identity, timeoutMs: number): Promise<number> {
  const backoff = new Backoff({ initialMs: 1000, maxMs: 30_000, floorMs: 500 });
  const started = Date.now();
  const tty = process.stderr.isTTY === true;
  for (let checks = 1; ; checks++) {
    let delay: number;
    let why: string;
    try {
      const session = await handshake(client, state.agentId, identity);
      await store.saveSession({
        token: session.token,
        issuedAt: new Date().toISOString(),
        expiresAt: session.expiresAt.toISOString(),
        heartbeatIntervalMs: session.heartbeatIntervalMs,
      });
      state.approvedAt = new Date().toISOString();
      await store.save(state);
      if (tty) process.stderr.write("\n");
      console.log(`Approved. Session valid until ${session.expiresAt.toISOString()}. Start the agent with: agw-agent run --state-dir ${store.dir}`);
      return EXIT.OK;
    } catch (err) {
      const verdict = classify(err);
      switch (verdict.kind) {
        case "revoked":
          state.revoked = { at: new Date().toISOString(), reason: verdict.message, source: "gateway (during enroll)" };
          await store.save(state);
          throw new ExitError(EXIT.REVOKED, `agent ${state.agentId} is revoked: ${verdict.message}`);
        case "identity-unusable":
          throw new ExitError(EXIT.IDENTITY_UNUSABLE, `agent ${state.agentId} cannot be approved: ${verdict.message}`);
        case "unknown-agent":
          throw new ExitError(EXIT.IDENTITY_UNUSABLE, `the gateway does not know agent ${state.agentId}: ${verdict.message}`);
        case "awaiting-approval":
          delay = backoff.next();
          why = "awaiting approval";
          break;
        default:
          delay = backoff.next(verdict.kind === "transient" ? (verdict.retryAfterMs ?? 0) : 0);
          why = `gateway not answering (${verdict.message})`;
      }
    }
    const waited = Date.now() - started;
    if (timeoutMs > 0 && waited + delay > timeoutMs) {
      if (tty) process.stderr.write("\n");
      throw new ExitError(EXIT.TEMPFAIL, `still ${why} after ${humanDuration(waited)}; run "agw-agent enroll --wait --state-dir ${store.dir}" to keep waiting`);
    }
    const line = `${why} (code ${state.verificationCode}, agent ${state.agentId}): ${checks} check${checks === 1 ? "" : "s"} in ${humanDuration(waited)}, next in ${humanDuration(delay)}`;
    process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
    await sleep(delay);
  }
}
