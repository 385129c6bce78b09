/**
 * deploy/compose.yaml without a container engine: validated against the Compose
 * Specification's JSON schema (vendored, deploy/schemas/), then checked for what a schema
 * cannot see: that the file wires the parts together the way the gateway needs (settings
 * that exist, HTTP/2 to the replicas, no stream timeouts, health on /readyz, the image's user
 * and read-only root, agents reading the token the mint job writes).
 */
import { describe, expect, it } from "vitest";
import { SETTINGS } from "../server/config/config.js";
import { runtimeStage } from "./support/containerfile.js";
import { durationMs, GATEWAY_ENV, readYaml, REPO, schemaValidator } from "./support/deploy-files.js";

type Service = Record<string, unknown> & {
  image?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
  ports?: string[];
};
type Compose = { services: Record<string, Service>; volumes: Record<string, unknown> };

const compose = readYaml("deploy/compose.yaml") as Compose;
const validateCompose = schemaValidator("deploy/schemas/compose-spec.json");
const image = runtimeStage(`${REPO}/deploy/Containerfile`);
const services = compose.services;
const gatewayImage = (name: string) => services[name]?.image === services.gateway?.image;
const defaultOf = (env: string) => SETTINGS.find((s) => s.env === env)?.defaultValue ?? "";

describe("deploy/compose.yaml", () => {
  it("is valid against the Compose Specification schema", () => {
    expect(validateCompose(compose)).toEqual([]);
  });

  it("would be refused by that schema with a typo or a wrong type (the check can fail)", () => {
    const clone = () => structuredClone(compose);
    const typo = clone();
    (typo.services.gateway as Record<string, unknown>).enviroment = { A: "b" };
    expect(validateCompose(typo).join("\n")).toContain("enviroment");
    const badCondition = clone();
    (badCondition.services.gateway as Service).depends_on = { migrate: { condition: "service_finished" } };
    expect(validateCompose(badCondition).join("\n")).toMatch(/depends_on\/migrate\/condition must be equal to one of the allowed values/);
    const wrongType = clone();
    (wrongType.services.gateway as Record<string, unknown>).volumes = "pgdata:/data";
    expect(validateCompose(wrongType).join("\n")).toMatch(/volumes must be array/);
    const badTop = clone() as unknown as Record<string, unknown>;
    badTop.service = {};
    expect(validateCompose(badTop)).not.toEqual([]);
  });

  it("runs PostgreSQL, migrations once, two gateway replicas, a load balancer, Prometheus and two agents", () => {
    expect(Object.keys(services).sort()).toEqual(["agent-1", "agent-2", "enrollment-token", "gateway", "lb", "migrate", "postgres", "prometheus"]);
    expect(services.gateway?.deploy).toMatchObject({ replicas: 2 });
    expect(services.migrate?.command).toEqual(["node", "bin/agentgateway.js", "migrate"]);
    expect(services.migrate?.depends_on?.postgres?.condition).toBe("service_healthy");
    // No replica starts before the schema is current.
    expect(services.gateway?.depends_on?.migrate?.condition).toBe("service_completed_successfully");
    expect(services.migrate?.environment?.DATABASE_URL).toBe(services.gateway?.environment?.DATABASE_URL);
    expect(services.gateway?.environment?.DATABASE_URL).toMatch(/^postgres:\/\/agw:\$\{AGW_DB_PASSWORD:\?[^}]+\}@postgres:5432\/agentgateway$/);
  });

  it("sets only gateway settings that exist, with a stop grace longer than the drain", () => {
    for (const name of ["gateway", "migrate"]) {
      for (const key of Object.keys(services[name]?.environment ?? {})) {
        expect(GATEWAY_ENV.has(key), `${name}: ${key} is not a gateway setting`).toBe(true);
      }
    }
    const env = services.gateway?.environment ?? {};
    const grace = durationMs(env.AGW_SHUTDOWN_GRACE ?? defaultOf("AGW_SHUTDOWN_GRACE"));
    expect(durationMs(String(services.gateway?.stop_grace_period))).toBeGreaterThan(grace + 5000);
    expect(services.gateway?.stop_signal).toBe(image.stopSignal);
    // Secrets come from the operator's environment and are required, never defaulted in the file.
    expect(env.AGW_BOOTSTRAP_ADMIN_KEY).toMatch(/^\$\{AGW_ADMIN_KEY:\?/);
  });

  it("runs every container of the image as the image's user with a read-only root, tmpfs /tmp, no capabilities", () => {
    const imageServices = Object.keys(services).filter(gatewayImage);
    expect(imageServices).toEqual(["migrate", "gateway", "enrollment-token", "agent-1", "agent-2"]);
    for (const name of imageServices) {
      const s = services[name] as Service;
      expect(s.user, name).toBe(image.user);
      expect(s.read_only, name).toBe(true);
      expect((s.tmpfs as string[]).some((t) => t.split(":")[0] === "/tmp"), name).toBe(true);
      expect(s.cap_drop, name).toEqual(["ALL"]);
      expect(s.security_opt, name).toContain("no-new-privileges:true");
    }
  });

  it("publishes only the load balancer and Prometheus, on loopback unless told otherwise", () => {
    const published = Object.entries(services).filter(([, s]) => s.ports?.length);
    expect(published.map(([n]) => n).sort()).toEqual(["lb", "prometheus"]);
    for (const [, s] of published) for (const p of s.ports ?? []) expect(p).toMatch(/^\$\{[A-Z_]+:-127\.0\.0\.1:\d+\}:\d+$/);
  });

  it("balances over HTTP/2 to every replica's /readyz-checked port, with no timeout that cuts a stream", () => {
    const envoy = readYaml("deploy/compose/envoy.yaml") as {
      static_resources: { listeners: Listener[]; clusters: Cluster[] };
    };
    type Listener = { address: { socket_address: { port_value: number } }; filter_chains: { filters: { typed_config: Hcm }[] }[] };
    type Hcm = { codec_type: string; stream_idle_timeout: string; route_config: { virtual_hosts: { routes: { route: { cluster: string; timeout: string; idle_timeout: string } }[] }[] } };
    type Cluster = {
      name: string;
      type: string;
      load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[] }[] };
      typed_extension_protocol_options: Record<string, { explicit_http_config: { http2_protocol_options: { max_concurrent_streams: number } } }>;
      health_checks: { http_health_check: { path: string } }[];
      circuit_breakers: { thresholds: { max_requests: number }[] };
    };
    const listener = envoy.static_resources.listeners[0] as Listener;
    const hcm = listener.filter_chains[0]?.filters[0]?.typed_config as Hcm;
    expect(hcm.codec_type).toBe("AUTO");
    expect(hcm.stream_idle_timeout).toBe("0s");
    const route = hcm.route_config.virtual_hosts[0]?.routes[0]?.route;
    expect(route).toMatchObject({ cluster: "gateway", timeout: "0s", idle_timeout: "0s" });
    // The published port maps onto the listener.
    expect(services.lb?.ports?.[0]?.endsWith(`:${listener.address.socket_address.port_value}`)).toBe(true);

    const cluster = envoy.static_resources.clusters.find((c) => c.name === route?.cluster) as Cluster;
    expect(cluster.type).toBe("STRICT_DNS");
    const target = cluster.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address;
    // The replicas' service name and the port the image listens on.
    expect(target?.address).toBe("gateway");
    expect(String(target?.port_value)).toBe(image.env.AGW_LISTEN?.split(":")[1]);
    const upstream = cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    expect(upstream?.explicit_http_config.http2_protocol_options.max_concurrent_streams).toBe(Number(defaultOf("AGW_MAX_STREAMS_PER_CONNECTION")));
    expect(cluster.health_checks[0]?.http_health_check.path).toBe("/readyz");
    expect(cluster.circuit_breakers.thresholds[0]?.max_requests).toBeGreaterThanOrEqual(100_000);
  });

  it("has Prometheus scrape every replica on the gateway port", () => {
    const prom = readYaml("deploy/compose/prometheus.yml") as { scrape_configs: { metrics_path: string; dns_sd_configs: { names: string[]; port: number }[] }[] };
    const job = prom.scrape_configs[0];
    expect(job?.metrics_path).toBe("/metrics");
    expect(job?.dns_sd_configs[0]?.names).toEqual(["gateway"]);
    expect(String(job?.dns_sd_configs[0]?.port)).toBe(image.env.AGW_LISTEN?.split(":")[1]);
  });

  it("enrolls each agent with the token the mint job writes, each with its own state volume", () => {
    const mint = services["enrollment-token"] as Service;
    const [, , url, out] = mint.command as string[];
    expect(url).toBe("http://lb:8080");
    const mintMount = (mint.volumes ?? []).find((v) => v.startsWith("enrollment-token:"))?.split(":")[1] ?? "";
    expect(out?.startsWith(`${mintMount}/`)).toBe(true);
    const file = out?.slice(mintMount.length) ?? "";
    const states = new Set<string>();
    for (const name of ["agent-1", "agent-2"]) {
      const s = services[name] as Service;
      const script = (s.command as string[]).join(" ");
      const tokenMount = (s.volumes ?? []).find((v) => v.startsWith("enrollment-token:"))?.split(":")[1] ?? "";
      expect(script).toContain(`--token-file ${tokenMount}${file}`);
      expect(script).toContain("--server http://lb:8080");
      expect(script).toContain("exec node bin/agw-agent.js run");
      expect(s.environment?.AGENT_NAME).toBe(name);
      const state = (s.volumes ?? []).find((v) => v.endsWith(":/var/lib/agw-agent"));
      expect(state).toBe(`${name}:/var/lib/agw-agent`);
      states.add(state ?? "");
      expect(s.depends_on?.["enrollment-token"]?.condition).toBe("service_completed_successfully");
    }
    expect(states.size).toBe(2);
    for (const v of ["enrollment-token", "agent-1", "agent-2", "pgdata"]) expect(compose.volumes).toHaveProperty(v);
  });
});
