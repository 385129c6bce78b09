import { join } from "node:path";
import { createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { pino } from "pino";
import type { ControlStreamRequest, ControlStreamResponseSchema, GoAwayReason } from "../../gen/agentgateway/v1/control_pb.js";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { BackoffOptions } from "./backoff.js";
import { gatewayClient } from "./direct.js";
import { Outbox } from "./outbox.js";
import { FILES, newState, StateStore } from "./state.js";
import { Supervisor, type SupervisorEvent } from "./supervisor.js";

/**
 * The supervisor's unit-test rig: a scripted fake gateway on an in-memory transport and a
 * supervisor on a fresh state directory that records its waits instead of sleeping. Used only
 * by the supervisor*.test.ts files.
 */

export type Response = MessageInitShape<typeof ControlStreamResponseSchema>;
type Impl = Partial<ServiceImpl<typeof AgentGatewayService>>;

/** What one fake stream does: push responses; read the agent's requests in order (undefined once the agent ended its side). */
export type StreamScript = (io: {
  send: (r: Response) => void;
  requests: ControlStreamRequest[];
  nextRequest: () => Promise<ControlStreamRequest | undefined>;
}) => Promise<void>;

export const welcome: Response = { kind: { case: "welcome", value: { replicaId: "fake", heartbeatInterval: durationFromMs(60_000) } } };
export const goAway = (reason: GoAwayReason, reconnectAfterMs = 0, message = ""): Response => ({
  kind: { case: "goAway", value: { reason, reconnectAfter: durationFromMs(reconnectAfterMs), message } },
});

/** A fake gateway (in-memory router transport): handshakes succeed unless overridden, each ControlStream runs the next script. */
export function fakeGateway(scripts: StreamScript[], overrides: Impl = {}) {
  const calls = { handshakes: 0, heartbeats: 0, streams: 0, hellos: [] as bigint[] };
  let nextScript = 0;
  const impl: Impl = {
    async beginAuthHandshake() {
      calls.handshakes++;
      return { challengeId: crypto.randomUUID(), nonce: new Uint8Array(32) };
    },
    async completeAuthHandshake() {
      return { sessionToken: `agws_fake_${calls.handshakes}`, expiresAt: timestampFromMs(Date.now() + 3_600_000), heartbeatInterval: durationFromMs(60_000) };
    },
    async uploadHeartbeat() {
      calls.heartbeats++;
      return {};
    },
    async *controlStream(requests) {
      calls.streams++;
      const script = scripts[Math.min(nextScript++, scripts.length - 1)];
      const seen: ControlStreamRequest[] = [];
      const incoming = createWritableIterable<ControlStreamRequest>();
      const reader = incoming[Symbol.asyncIterator]();
      void (async () => {
        try {
          for await (const r of requests) {
            if (r.kind.case === "hello") calls.hellos.push(r.kind.value.lastAppliedSequence);
            seen.push(r);
            void incoming.write(r).catch(() => {});
          }
        } catch {
          // the agent went away
        }
        incoming.close();
      })();
      const out = createWritableIterable<Response>();
      const finished = (script ?? (async () => {}))({
        send: (r) => void out.write(r).catch(() => {}),
        requests: seen,
        nextRequest: async () => {
          const next = await reader.next();
          return next.done ? undefined : next.value;
        },
      }).finally(() => out.close());
      yield* out;
      await finished;
    },
    ...overrides,
  };
  const transport = createRouterTransport((router) => router.service(AgentGatewayService, impl));
  return { client: gatewayClient(transport), calls };
}

export interface Harness {
  supervisor: Supervisor;
  store: StateStore;
  events: SupervisorEvent[];
  delays: number[];
  outbox?: Outbox;
}

export async function harness(
  dir: string,
  gateway: ReturnType<typeof fakeGateway>,
  options: { healthyAfterMs?: number; outbox?: boolean; stopAfterDelays?: number; backoff?: BackoffOptions } = {},
): Promise<Harness> {
  const store = new StateStore(join(dir, "state"));
  await store.init();
  const identity = await store.createIdentity();
  const state = newState({
    server: "http://127.0.0.1:1",
    agentId: crypto.randomUUID(),
    tenantId: crypto.randomUUID(),
    name: "t",
    labels: {},
    verificationCode: "X",
    tls: { pins: [] },
    releaseKeys: [],
  });
  await store.save(state);
  const outbox = options.outbox ? await Outbox.open(store.path(FILES.outbox)) : undefined;
  const events: SupervisorEvent[] = [];
  const delays: number[] = [];
  const h: Harness = { supervisor: undefined as unknown as Supervisor, store, events, delays, ...(outbox ? { outbox } : {}) };
  h.supervisor = new Supervisor({
    client: gateway.client,
    identity,
    store,
    state,
    ...(outbox ? { outbox } : {}),
    healthyAfterMs: options.healthyAfterMs ?? 30_000,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    hostInfo: () => ({ hostname: "h", os: "linux", arch: "x64", agentVersion: "1.0.0", labels: {} }),
    version: () => "1.0.0",
    commands: { releaseKeys: [], updateTimeoutMs: 1000, stateDir: store.dir, installedVersion: async (_h, v) => v },
    logger: pino({ level: "silent" }),
    observer: (e) => events.push(e),
    random: () => 0.5,
    // Record the wait instead of sleeping; stop once enough waits were seen.
    sleep: async (ms) => {
      delays.push(ms);
      if (delays.length >= (options.stopAfterDelays ?? 1)) void h.supervisor.stop(100);
      await new Promise((r) => setTimeout(r, 1));
    },
  });
  return h;
}
