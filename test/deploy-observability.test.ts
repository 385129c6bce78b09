/**
 * deploy/prometheus (alert rules) and deploy/grafana (dashboard) against a real gateway: every
 * metric name their PromQL references must be one the gateway exports on a real scrape, so a
 * renamed metric breaks this test instead of silently emptying a panel or muting an alert. Also
 * that compose's Prometheus loads the rules and scrapes the replicas, and that the Helm
 * ServiceMonitor scrapes the path and port the gateway serves /metrics on.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayClient, sendHeartbeat, uploadTelemetry } from "../agent/lib/direct.js";
import { AgentStatus } from "../gen/agentgateway/v1/ingest_pb.js";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { enrollAgent } from "./support/agents.js";
import { durationMs, readYaml, readYamlDocuments, REPO } from "./support/deploy-files.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { scrape } from "./support/prometheus.js";
import { ackOf, openStream } from "./support/stream.js";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";

type Rule = { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> };
type Panel = { type: string; title: string; targets?: { expr: string }[] };

const rules = (readYaml("deploy/prometheus/agentgateway-alerts.yaml") as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(`${REPO}/deploy/grafana/agentgateway-dashboard.json`, "utf8")) as {
  panels: Panel[];
  templating: { list: { query: unknown }[] };
};

/** PromQL functions, aggregations and keywords (everything that is not a metric name). */
const PROMQL_WORDS = new Set(
  (
    "sum min max avg count stddev stdvar topk bottomk quantile count_values group by without on ignoring group_left group_right " +
    "and or unless bool offset rate irate increase delta idelta deriv histogram_quantile label_values label_replace label_join " +
    "abs ceil floor round clamp clamp_min clamp_max absent absent_over_time changes resets time vector scalar sort sort_desc " +
    "avg_over_time min_over_time max_over_time sum_over_time count_over_time last_over_time predict_linear inf nan"
  ).split(" "),
);

/** Prometheus' own series, not the gateway's. */
const PROMETHEUS_OWN = new Set(["up"]);

/** The metric names a PromQL expression reads. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values and strings
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\[[^\]]*\]/g, "") // ranges and subqueries ([5m], [$__rate_interval])
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "") // grouping labels
    .replace(/\boffset\s+\S+/g, "")
    .replace(/\$\w+/g, "");
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    if (!PROMQL_WORDS.has(word)) names.add(word);
  }
  return [...names];
}

const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));
const ruleExprs = rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }));

describe("alert rules and dashboard against a real gateway's /metrics", () => {
  let gw: TestGateway;
  let exported: Set<string>;

  beforeAll(async () => {
    gw = await startTestGateway({ heartbeatFlushInterval: "1h" });
    // A little of everything, so series that appear on their first event exist.
    const agent = await enrollAgent(gw);
    const client = gatewayClient(gw.transport);
    await uploadTelemetry(client, agent.session, [{ id: "p", name: "cpu", labels: {}, value: 1, observedAt: timestampFromMs(Date.UTC(2024, 0, 1)) }]);
    await sendHeartbeat(client, agent.session, { agentVersion: "1.0.0", status: AgentStatus.HEALTHY });
    await gw.gateway.context.heartbeats.flush();
    const stream = openStream(client, agent.session);
    await stream.next();
    const peer = await enrollAgent(gw);
    await gw.admin(AgentService).revokeAgent({ id: peer.registration.agentId, reason: "test" });
    const notice = await stream.next();
    if (notice.kind.case === "command") stream.send(ackOf(notice.kind.value.sequence));
    await gw.gateway.context.control.flushAcks();
    stream.close();
    await stream.ended;
    exported = new Set((await scrape(`${gw.url}/metrics`)).map((s) => s.name));
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("finds metric names in PromQL, and would catch a name the gateway does not export", () => {
    expect(metricNames('sum by (le, rpc_method) (rate(rpc_server_call_duration_bucket{rpc_method!~"A|B"}[5m]))').sort()).toEqual([
      "rpc_server_call_duration_bucket",
    ]);
    expect(metricNames("max(agw_x) > 600 and sum(agw_y offset 15m) > 0").sort()).toEqual(["agw_x", "agw_y"]);
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(agw_z_bucket{instance=~"$instance"}[$__rate_interval])))')).toEqual(["agw_z_bucket"]);
    expect(exported.has("agw_handshake_total")).toBe(false); // a typo of agw_handshakes_total
  });

  it("every alert rule reads only metrics the gateway exports", () => {
    expect(rules.length).toBeGreaterThanOrEqual(10);
    const missing = ruleExprs.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((n) => !exported.has(n) && !PROMETHEUS_OWN.has(n))
        .map((n) => `${where}: ${n}`),
    );
    expect(missing).toEqual([]);
  });

  it("every dashboard panel reads only metrics the gateway exports", () => {
    expect(dashboardExprs.length).toBeGreaterThanOrEqual(15);
    const missing = dashboardExprs.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((n) => !exported.has(n))
        .map((n) => `${where}: ${n}`),
    );
    expect(missing).toEqual([]);
    // The replica picker's query too.
    const variables = JSON.stringify(dashboard.templating.list.map((v) => v.query));
    for (const name of variables.match(/label_values\((\w+)/g)?.map((m) => m.slice("label_values(".length)) ?? []) expect(exported.has(name)).toBe(true);
  });

  it("every alert has a severity, a summary and a valid duration", () => {
    for (const rule of rules) {
      expect(["page", "warning", "info"], rule.alert).toContain(rule.labels.severity);
      expect(rule.annotations.summary, rule.alert).toBeTruthy();
      if (rule.for !== undefined) expect(durationMs(rule.for), rule.alert).toBeGreaterThan(0);
    }
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });
});

describe("where Prometheus scrapes", () => {
  it("compose's Prometheus loads the alert rules compose mounts", () => {
    const prom = readYaml("deploy/compose/prometheus.yml") as { rule_files: string[] };
    const compose = readYaml("deploy/compose.yaml") as { services: Record<string, { volumes?: string[] }> };
    const mounts = (compose.services.prometheus?.volumes ?? []).map((v) => v.split(":"));
    const rulesMount = mounts.find(([source]) => source === "./prometheus/agentgateway-alerts.yaml");
    expect(rulesMount?.[1]).toBeDefined();
    const glob = new RegExp(`^${(prom.rule_files[0] ?? "").replace(/\./g, "\\.").replace(/\*/g, "[^/]*")}$`);
    expect(rulesMount?.[1]).toMatch(glob);
  });

  it("the chart's ServiceMonitor scrapes /metrics on the port the gateway container listens on", () => {
    let checked = 0;
    for (const file of ["minimal.yaml", "production.yaml"]) {
      const docs = readYamlDocuments(`deploy/helm/rendered/${file}`) as { kind: string; spec: unknown }[];
      const monitor = docs.find((d) => d?.kind === "ServiceMonitor") as unknown as { spec: { endpoints: { port: string; path: string }[] } } | undefined;
      if (!monitor) continue;
      const service = docs.find((d) => d?.kind === "Service") as unknown as { spec: { ports: { name: string; targetPort: string | number }[] } };
      const deployment = docs.find((d) => d?.kind === "Deployment") as unknown as {
        spec: {
          template: { spec: { containers: { name: string; ports: { name: string; containerPort: number }[]; env?: { name: string; value?: string }[] }[] } };
        };
      };
      const container = deployment.spec.template.spec.containers[0];
      for (const endpoint of monitor.spec.endpoints) {
        checked++;
        expect(endpoint.path).toBe("/metrics");
        const port = service.spec.ports.find((p) => p.name === endpoint.port);
        expect(port, `${file}: service port ${endpoint.port}`).toBeDefined();
        const target = container?.ports.find((p) => p.name === port?.targetPort || p.containerPort === port?.targetPort);
        expect(target, `${file}: container port behind ${endpoint.port}`).toBeDefined();
        // /metrics is on the gateway port unless AGW_METRICS_LISTEN moved it.
        expect(container?.env?.find((e) => e.name === "AGW_METRICS_LISTEN")?.value ?? "").toBe("");
        const listen = container?.env?.find((e) => e.name === "AGW_LISTEN")?.value ?? "";
        expect(listen.endsWith(`:${target?.containerPort}`), `${file}: AGW_LISTEN ${listen}`).toBe(true);
      }
    }
    expect(checked).toBeGreaterThan(0);
  });
});
