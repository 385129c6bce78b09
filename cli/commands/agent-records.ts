/** `agwctl agents events|telemetry`: what an agent uploaded (AgentService). */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import {
  AgentService,
  ListAgentEventsResponseSchema,
  ListAgentTelemetryResponseSchema,
  type StoredEvent,
  StoredEventSchema,
} from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { examples, handle } from "../command-table.js";
import { collectPages, durationFlag, idArg, intFlag, timeFlag } from "../flags.js";
import type { Io } from "../output.js";
import { renderTable } from "../table.js";
import { AGENT_NOT_FOUND, dateOf, EVENT_HEADERS, eventRow, POINT_HEADERS, pointRow } from "./agent-view.js";

/** How far back `--follow` looks for events that arrive late (agents upload after outages). */
const FOLLOW_LOOKBACK_MS = 5 * 60_000;

interface EventOptions {
  since?: string;
  until?: string;
  limit: string;
  follow?: boolean;
  interval: string;
}

/** Registers `agents events` and `agents telemetry` under the agents group. */
export function registerAgentRecords(agents: Command, io: Io): void {
  const events = agents
    .command("events")
    .argument("<id>", "agent ID")
    .option("--since <time>", "only events that occurred since then: a duration ago (10m) or a time (2026-05-01T12:00:00Z)")
    .option("--until <time>", "only events that occurred before then")
    .option("--limit <n>", "at most this many, newest (0: all)", "100")
    .option("-f, --follow", "keep printing new events as they arrive (one JSON object per line with -o json)")
    .option("--interval <duration>", "how often --follow asks the gateway", "2s")
    .description("Show the events an agent uploaded, oldest first in tables (the API's newest-first order in JSON).");
  examples(events, "agwctl agents events 6f1c… --since 1h", "agwctl agents events 6f1c… --follow -o json | jq .event.message");
  handle<EventOptions>(events, io, {
    rpcs: [AgentService.method.listAgentEvents],
    notFound: AGENT_NOT_FOUND,
    async run(run, [rawId], o) {
      const agentId = idArg("agent ID", rawId);
      const since = timeFlag("--since", o.since);
      const until = timeFlag("--until", o.until);
      const interval = durationFlag("--interval", o.interval) ?? 2000;
      const client = run.client(AgentService);
      const fetch = (from: Date | undefined, limit: number) =>
        collectPages<StoredEvent>(
          async (pageToken, pageSize) => {
            const res = await client.listAgentEvents({
              agentId,
              ...(from ? { since: timestampFromDate(from) } : {}),
              ...(until ? { until: timestampFromDate(until) } : {}),
              pageSize,
              pageToken,
            });
            return { items: res.events, next: res.nextPageToken };
          },
          limit,
          1000,
        );
      const limit = intFlag("--limit", o.limit, 100, 1_000_000);
      const first = await fetch(since, limit);
      if (!o.follow) {
        run.out.result(ListAgentEventsResponseSchema, create(ListAgentEventsResponseSchema, { events: first.items, nextPageToken: first.next }), {
          text: () =>
            first.items.length
              ? renderTable(EVENT_HEADERS, [...first.items].reverse().map(eventRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 1] })
              : "No events.",
        });
        return;
      }
      const seen = new Map<string, number>();
      const print = (batch: StoredEvent[]) => {
        for (const e of [...batch].reverse()) {
          const key = e.event?.id ?? "";
          if (seen.has(key)) continue;
          seen.set(key, dateOf(e.event?.occurredAt)?.getTime() ?? 0);
          run.out.item(StoredEventSchema, e, {
            text: () =>
              eventRow(e)
                .map((c) => (typeof c === "string" ? c : c.text))
                .join("  "),
          });
        }
      };
      print(first.items);
      const started = Date.now();
      for (;;) {
        await new Promise((r) => setTimeout(r, interval));
        const newest = Math.max(started, ...seen.values());
        const from = new Date(Math.max(since?.getTime() ?? 0, newest - FOLLOW_LOOKBACK_MS));
        // Forget what is older than the window: the set stays bounded however long we follow.
        for (const [key, at] of seen) if (at < from.getTime()) seen.delete(key);
        print((await fetch(from, 10_000)).items);
      }
    },
  });

  const telemetry = agents
    .command("telemetry")
    .argument("<id>", "agent ID")
    .option("--name <metric>", "only points of this metric, e.g. cpu.utilization")
    .option("--since <time>", "only points observed since then: a duration ago (10m) or a time")
    .option("--until <time>", "only points observed before then")
    .option("--limit <n>", "at most this many, newest (0: all)", "100")
    .description("Show the metric points an agent uploaded, newest first.");
  examples(telemetry, "agwctl agents telemetry 6f1c… --name cpu.utilization --since 1h", "agwctl agents telemetry 6f1c… -o json");
  handle<{ name?: string; since?: string; until?: string; limit: string }>(telemetry, io, {
    rpcs: [AgentService.method.listAgentTelemetry],
    notFound: AGENT_NOT_FOUND,
    async run(run, [rawId], o) {
      const agentId = idArg("agent ID", rawId);
      const since = timeFlag("--since", o.since);
      const until = timeFlag("--until", o.until);
      const client = run.client(AgentService);
      const { items, next } = await collectPages(
        async (pageToken, pageSize) => {
          const res = await client.listAgentTelemetry({
            agentId,
            name: o.name ?? "",
            ...(since ? { since: timestampFromDate(since) } : {}),
            ...(until ? { until: timestampFromDate(until) } : {}),
            pageSize,
            pageToken,
          });
          return { items: res.points, next: res.nextPageToken };
        },
        intFlag("--limit", o.limit, 100, 1_000_000),
        5000,
      );
      run.out.result(ListAgentTelemetryResponseSchema, create(ListAgentTelemetryResponseSchema, { points: items, nextPageToken: next }), {
        text: () =>
          items.length ? renderTable(POINT_HEADERS, items.map(pointRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 2] }) : "No metric points.",
      });
    },
  });
}
