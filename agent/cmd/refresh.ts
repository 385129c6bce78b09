import { parseArgs } from "node:util";
import { gatewayClient, handshake } from "../lib/direct.js";
import { classify, EXIT, ExitError } from "../lib/errors.js";
import { FILES } from "../lib/state.js";
import { createGatewayTransport } from "../../client/transport.js";
import { COMMON_FLAGS, humanDuration, loggerOf, openEnrolled, protocolOf, stateDirOf, TRUST_FLAGS, trustOf } from "./common.js";

export const REFRESH_USAGE = `agw-agent refresh [--state-dir DIR]
  Forces a new handshake now and prints the new session's expiry (never the token). A running
  agent's stream is fenced by the new session and reconnects with it.`;

/** `agw-agent refresh`. */
export async function refresh(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...COMMON_FLAGS, ...TRUST_FLAGS }, strict: true });
  if (values.help) {
    console.log(REFRESH_USAGE);
    return EXIT.OK;
  }
  const dir = stateDirOf(values["state-dir"]);
  const { store, state } = await openEnrolled(dir);
  const logger = loggerOf(values["log-level"] ?? "warn");
  const identity = await store.loadIdentity();
  if (!identity) throw new ExitError(EXIT.IDENTITY_UNUSABLE, `${dir}/${FILES.identity} is missing`);
  const transport = createGatewayTransport(values.server ?? state.server, trustOf(values, state), { protocol: protocolOf(values.protocol) });
  try {
    const session = await handshake(gatewayClient(transport.transport), state.agentId, identity);
    await store.saveSession({
      token: session.token,
      issuedAt: new Date().toISOString(),
      expiresAt: session.expiresAt.toISOString(),
      heartbeatIntervalMs: session.heartbeatIntervalMs,
    });
    console.log(
      `New session for agent ${state.agentId} valid until ${session.expiresAt.toISOString()} (in ${humanDuration(session.expiresAt.getTime() - Date.now())}).`,
    );
    return EXIT.OK;
  } catch (err) {
    const verdict = classify(err);
    if (verdict.kind === "revoked") {
      await store.clearSession();
      state.revoked = { at: new Date().toISOString(), reason: verdict.message, source: "gateway (refresh)" };
      await store.save(state);
      throw new ExitError(EXIT.REVOKED, `agent ${state.agentId} is revoked: ${verdict.message}`);
    }
    if (verdict.kind === "identity-unusable") throw new ExitError(EXIT.IDENTITY_UNUSABLE, verdict.message);
    if (verdict.kind === "awaiting-approval")
      throw new ExitError(EXIT.TEMPFAIL, `agent ${state.agentId} is still awaiting approval (code ${state.verificationCode})`);
    throw new ExitError(EXIT.TEMPFAIL, `handshake failed: ${verdict.message}`);
  } finally {
    transport.close();
    logger.flush();
  }
}
