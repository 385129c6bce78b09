/**
 * The Helm chart without Helm or a cluster (neither exists on these machines). The chart's
 * values are checked against its values.schema.json (what `helm install` does first); the
 * manifests rendered from it (deploy/helm/rendered/, made by scripts/render-chart.sh with
 * Helm's template engine; CI re-renders and fails on a difference) are validated against the
 * Kubernetes OpenAPI schemas (npm `kubernetes-models`) and the Prometheus Operator's CRDs, and
 * then checked for wiring a schema cannot see: selectors, probe paths, ports, the image's
 * user and command, hook order, settings that exist, a grace period that covers the drain.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Deployment } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { describe, expect, it } from "vitest";
import { SETTINGS } from "../server/config/config.js";
import { runtimeStage } from "./support/containerfile.js";
import { CHART_MANAGED, CHART_NEVER_SET, durationMs, GATEWAY_ENV, readYaml, readYamlDocuments, REPO, schemaValidator } from "./support/deploy-files.js";

type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: unknown };
type Values = Record<string, unknown>;

const CHART = "deploy/helm/agentgateway";
const EXAMPLES = ["minimal", "production"] as const;
const MODELS: Record<string, new (doc: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "batch/v1/Job": Job,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

const validateValues = schemaValidator(`${CHART}/values.schema.json`);
const defaults = readYaml(`${CHART}/values.yaml`) as Values;
const image = runtimeStage(join(REPO, "deploy", "Containerfile"));

function merge(base: Values, override: Values): Values {
  const out: Values = { ...base };
  for (const [k, v] of Object.entries(override)) {
    const b = out[k];
    out[k] = b && v && typeof b === "object" && typeof v === "object" && !Array.isArray(b) && !Array.isArray(v) ? merge(b as Values, v as Values) : v;
  }
  return out;
}
const valuesOf = (example: string) => merge(defaults, readYaml(`deploy/helm/examples/${example}-values.yaml`) as Values);
const rendered = (example: string) => readYamlDocuments(`deploy/helm/rendered/${example}.yaml`) as Doc[];
const kubeErrors = (doc: Doc): string => {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return `no schema for ${doc.apiVersion} ${doc.kind}`;
  try {
    new Model(doc as never).validate();
    return "";
  } catch (err) {
    return (err as Error).message;
  }
};

describe("the chart's values", () => {
  it("are valid against values.schema.json, as shipped and in every example", () => {
    for (const example of EXAMPLES) expect(validateValues(valuesOf(example)), example).toEqual([]);
  });

  it("are refused for the mistakes an operator makes (the check can fail)", () => {
    const bad = (override: Values) => validateValues(merge(valuesOf("minimal"), override)).join("\n");
    expect(bad({ replicas: 3 })).toMatch(/must NOT have additional properties \(replicas\)/);
    expect(bad({ config: { AGW_LOG_LEVLE: "debug" } })).toMatch(/config.*property name must be valid|propertyNames/);
    expect(bad({ config: { AGW_DB_POOL_SIZE: 20 } })).toMatch(/config\/AGW_DB_POOL_SIZE must be string/);
    expect(bad({ bootstrapAdminKey: { value: "too-short" } })).toMatch(/bootstrapAdminKey\/value/);
    expect(bad({ tls: { enabled: true, secretName: "" } })).toMatch(/tls\/secretName/);
    expect(bad({ service: { type: "Ingress" } })).toMatch(/service\/type must be equal to one of the allowed values/);
    // The CA key never goes into the ConfigMap, and mTLS without the CA key (or without TLS) is refused before the pods would be.
    expect(bad({ config: { AGW_CA_KEY: "x".repeat(44) } })).toMatch(/config.*propertyNames|property name must be valid/);
    expect(bad({ config: { AGW_CA_KEY_FILE: "/tmp/k" } })).toMatch(/config.*propertyNames|property name must be valid/);
    expect(bad({ config: { AGW_AGENT_AUTH: "mtls" }, tls: { enabled: true, secretName: "t" } })).toMatch(/ca/);
    expect(bad({ config: { AGW_AGENT_AUTH: "both" }, tls: { enabled: true, secretName: "t" }, ca: { existingSecret: "" } })).toMatch(/ca\/existingSecret/);
    expect(bad({ config: { AGW_AGENT_AUTH: "mtls" }, ca: { existingSecret: "agw-ca" } })).toMatch(/tls\/enabled/);
    expect(bad({ ca: { existingSecret: "agw-ca", keyKey: "" } })).toMatch(/ca\/keyKey/);
    expect(bad({ config: { AGW_AGENT_AUTH: "mtls" }, tls: { enabled: true, secretName: "t" }, ca: { existingSecret: "agw-ca" } })).toBe("");
    expect(validateValues(defaults).join("\n")).toMatch(/database/);
  });

  it("let `config` carry exactly the gateway settings the chart does not set itself", () => {
    const schema = JSON.parse(readFileSync(join(REPO, CHART, "values.schema.json"), "utf8")) as { properties: { config: { propertyNames: { enum: string[] } } } };
    const expected = SETTINGS.map((s) => s.env).filter((env) => !CHART_MANAGED.includes(env));
    expect(schema.properties.config.propertyNames.enum, "run: npx tsx scripts/sync-deploy-settings.ts").toEqual(expected);
    // What the chart sets itself really is set by the Deployment.
    const env = readFileSync(join(REPO, CHART, "templates", "deployment.yaml"), "utf8");
    for (const name of CHART_MANAGED.filter((n) => !CHART_NEVER_SET.includes(n))) expect(env, name).toContain(`name: ${name}`);
    for (const name of CHART_NEVER_SET) expect(env, name).not.toContain(`name: ${name}\n`);
  });
});

describe.each(EXAMPLES)("deploy/helm/rendered/%s.yaml", (example) => {
  const docs = rendered(example);
  const values = valuesOf(example);
  const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
  const one = (kind: string) => {
    const found = byKind(kind);
    expect(found, kind).toHaveLength(1);
    return found[0] as Doc;
  };
  type Container = {
    name: string;
    args: string[];
    ports: { name: string; containerPort: number }[];
    env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
    envFrom?: { configMapRef: { name: string } }[];
    livenessProbe: Probe;
    readinessProbe: Probe;
    startupProbe: Probe;
    lifecycle?: { preStop: { exec: { command: string[] } } };
    securityContext: Record<string, unknown>;
    volumeMounts: { name: string; mountPath: string }[];
  };
  type Probe = { httpGet: { path: string; port: string; scheme: string } };
  type PodSpec = { containers: Container[]; securityContext: { runAsUser: number; runAsGroup: number; runAsNonRoot: boolean }; terminationGracePeriodSeconds: number; volumes: { name: string }[] };
  const deployment = () => one("Deployment") as Doc & { spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } };
  const gateway = () => deployment().spec.template.spec.containers[0] as Container;

  it("is valid against the Kubernetes and Prometheus Operator schemas", () => {
    expect(docs.length).toBeGreaterThanOrEqual(6);
    for (const doc of docs) expect(kubeErrors(doc), `${doc.kind} ${doc.metadata?.name}`).toBe("");
  });

  it("would be refused by those schemas with a wrong type (the check can fail)", () => {
    const d = structuredClone(deployment()) as unknown as { spec: { replicas: unknown; template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } };
    d.spec.replicas = "two";
    expect(kubeErrors(d as unknown as Doc)).toMatch(/replicas must be integer/);
    const p = structuredClone(deployment()) as unknown as { spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } };
    (p.spec.template.spec.containers[0]?.ports[0] as { containerPort: unknown }).containerPort = "7070";
    expect(kubeErrors(p as unknown as Doc)).toMatch(/containerPort must be integer/);
    expect(kubeErrors({ apiVersion: "apps/v1", kind: "Deploymnet", metadata: { name: "x" } })).toMatch(/no schema/);
  });

  it("has the Deployment, Service, migrations Job, ConfigMap, PodDisruptionBudget and ServiceAccount", () => {
    for (const kind of ["Deployment", "Service", "Job", "ConfigMap", "PodDisruptionBudget", "ServiceAccount"]) one(kind);
    expect(deployment().spec.replicas).toBe(values.replicaCount);
    if (example === "production") {
      one("ServiceMonitor");
      one("NetworkPolicy");
      // Secrets come from outside the chart there.
      expect(byKind("Secret")).toHaveLength(0);
    } else {
      one("Secret");
    }
  });

  it("selects the gateway pods consistently from the Deployment, Service, PodDisruptionBudget and ServiceMonitor", () => {
    const podLabels = deployment().spec.template.metadata.labels;
    const matches = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
    expect(matches(deployment().spec.selector.matchLabels)).toBe(true);
    const service = one("Service") as Doc & { spec: { selector: Record<string, string>; ports: { name: string; targetPort: string; appProtocol: string }[] } };
    expect(matches(service.spec.selector)).toBe(true);
    expect(matches((one("PodDisruptionBudget") as Doc & { spec: { selector: { matchLabels: Record<string, string> } } }).spec.selector.matchLabels)).toBe(true);
    expect(gateway().ports.map((p) => p.name)).toContain(service.spec.ports[0]?.targetPort);
    expect(service.spec.ports[0]?.appProtocol).toBe((values.tls as { enabled: boolean }).enabled ? "https" : "kubernetes.io/h2c");
    for (const sm of byKind("ServiceMonitor") as (Doc & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } })[]) {
      expect(Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels?.[k] === v)).toBe(true);
      expect(sm.spec.endpoints[0]).toMatchObject({ port: service.spec.ports[0]?.name, path: "/metrics" });
    }
    // The migrations pod must not count as a gateway replica.
    const job = one("Job") as Doc & { spec: { template: { metadata: { labels: Record<string, string> } } } };
    expect(Object.entries(deployment().spec.selector.matchLabels).every(([k, v]) => job.spec.template.metadata.labels[k] === v)).toBe(false);
  });

  it("runs the image's command as the image's user, read-only, probing /healthz and /readyz on the gateway port", () => {
    const c = gateway();
    const pod = deployment().spec.template.spec;
    expect(c.args).toEqual(image.cmd);
    const [uid, gid] = (image.user ?? "").split(":").map(Number);
    expect(pod.securityContext).toMatchObject({ runAsUser: uid, runAsGroup: gid, runAsNonRoot: true });
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    expect(c.volumeMounts.map((m) => m.mountPath)).toContain("/tmp");
    const listen = c.env.find((e) => e.name === "AGW_LISTEN")?.value ?? "";
    expect(c.ports[0]?.containerPort).toBe(Number(listen.split(":")[1]));
    expect(listen.split(":")[1]).toBe(image.env.AGW_LISTEN?.split(":")[1]);
    const scheme = (values.tls as { enabled: boolean }).enabled ? "HTTPS" : "HTTP";
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: c.ports[0]?.name, scheme });
    expect(c.startupProbe.httpGet).toEqual({ path: "/healthz", port: c.ports[0]?.name, scheme });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: c.ports[0]?.name, scheme });
  });

  it("sets only gateway settings that exist, and secrets only from Secrets", () => {
    const c = gateway();
    const configMap = one("ConfigMap") as Doc & { data: Record<string, string> };
    expect(c.envFrom?.[0]?.configMapRef.name).toBe(configMap.metadata.name);
    for (const key of Object.keys(configMap.data)) expect(GATEWAY_ENV.has(key), key).toBe(true);
    for (const e of c.env) expect(GATEWAY_ENV.has(e.name), e.name).toBe(true);
    for (const name of ["DATABASE_URL", "AGW_BOOTSTRAP_ADMIN_KEY"]) {
      const e = c.env.find((x) => x.name === name);
      if (e) expect(e.valueFrom?.secretKeyRef, name).toBeDefined();
    }
    const db = c.env.find((e) => e.name === "DATABASE_URL")?.valueFrom?.secretKeyRef;
    const own = byKind("Secret")[0] as (Doc & { stringData: Record<string, string> }) | undefined;
    if (own) expect(own.stringData[db?.key ?? ""]).toBe((values.database as { url: string }).url);
    else expect(db).toEqual({ name: (values.database as { existingSecret: string }).existingSecret, key: (values.database as { existingSecretKey: string }).existingSecretKey });
  });

  it("passes the CA key from its Secret as one read-only file (AGW_CA_KEY_FILE), never as a value, whenever agents authenticate with mTLS", () => {
    const c = gateway();
    const pod = deployment().spec.template.spec as unknown as { volumes: { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] } }[] };
    const ca = values.ca as { existingSecret: string; keyKey: string };
    const config = values.config as Record<string, string>;
    const configMap = one("ConfigMap") as Doc & { data: Record<string, string> };
    // No CA key as a value anywhere: not in the ConfigMap, not in any container's environment.
    for (const key of Object.keys(configMap.data)) expect(key).not.toMatch(/^AGW_CA_KEY/);
    const job = one("Job") as Doc & { spec: { template: { spec: { containers: Container[] } } } };
    for (const container of [c, ...job.spec.template.spec.containers]) expect(container.env.map((e) => e.name)).not.toContain("AGW_CA_KEY");
    const file = c.env.find((e) => e.name === "AGW_CA_KEY_FILE");
    if (["mtls", "both"].includes(config.AGW_AGENT_AUTH ?? "")) expect(file, "mTLS needs the CA key: the gateway refuses to start without it").toBeDefined();
    if (!ca.existingSecret) {
      expect(file).toBeUndefined();
      expect(pod.volumes.map((v) => v.name)).not.toContain("ca-key");
      return;
    }
    const path = file?.value ?? "";
    const dir = path.slice(0, path.lastIndexOf("/"));
    const mount = (c.volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[]).find((m) => m.mountPath === dir);
    expect(mount, `a mount at ${dir}`).toMatchObject({ readOnly: true });
    const volume = pod.volumes.find((v) => v.name === mount?.name);
    expect(volume?.secret).toMatchObject({ secretName: ca.existingSecret, items: [{ key: ca.keyKey, path: path.slice(dir.length + 1) }] });
    // The key reaches the gateway process only: the migrations Job does not mount it.
    expect(JSON.stringify(job)).not.toContain(ca.existingSecret);
  });

  it("migrates with a hook Job that runs `migrate` after its Secret exists and before the pods roll", () => {
    const job = one("Job") as Doc & { spec: { template: { spec: { restartPolicy: string; containers: Container[] } } } };
    const hooks = (d: Doc) => (d.metadata.annotations?.["helm.sh/hook"] ?? "").split(",");
    expect(hooks(job).sort()).toEqual(["pre-install", "pre-upgrade"]);
    const migrate = job.spec.template.spec.containers[0] as Container;
    expect(migrate.args).toEqual(["node", "bin/agentgateway.js", "migrate"]);
    expect(migrate.env.find((e) => e.name === "DATABASE_URL")?.valueFrom).toEqual(gateway().env.find((e) => e.name === "DATABASE_URL")?.valueFrom);
    expect(migrate.securityContext).toMatchObject({ readOnlyRootFilesystem: true });
    const weight = (d: Doc) => Number(d.metadata.annotations?.["helm.sh/hook-weight"] ?? 0);
    for (const secret of byKind("Secret")) {
      expect(hooks(secret)).toEqual(expect.arrayContaining(["pre-install", "pre-upgrade"]));
      expect(weight(secret)).toBeLessThan(weight(job));
    }
  });

  it("meets the Pod Security Standard \"restricted\" in every pod it creates (no admission controller runs here)", () => {
    const pods = [deployment().spec.template.spec, (one("Job") as Doc & { spec: { template: { spec: unknown } } }).spec.template.spec] as unknown as RestrictedPod[];
    for (const pod of pods) expect(restrictedViolations(pod)).toEqual([]);
    // The checker itself refuses what the profile refuses.
    const weak = structuredClone(pods[0]) as RestrictedPod;
    weak.hostNetwork = true;
    (weak.containers[0] as RestrictedContainer).securityContext = { allowPrivilegeEscalation: true, capabilities: { add: ["NET_ADMIN"] } };
    weak.volumes = [{ name: "h", hostPath: { path: "/" } }];
    expect(restrictedViolations(weak)).toEqual(expect.arrayContaining(["hostNetwork", "gateway: allowPrivilegeEscalation", "gateway: capabilities.drop ALL", "gateway: capabilities.add NET_ADMIN", "volume h: hostPath"]));
  });

  it("gives a terminating pod time for the preStop pause, the drain and the flush", () => {
    const pod = deployment().spec.template.spec;
    const preStop = Number(gateway().lifecycle?.preStop.exec.command[1] ?? 0) * 1000;
    const configMap = one("ConfigMap") as Doc & { data: Record<string, string> };
    const grace = durationMs(configMap.data.AGW_SHUTDOWN_GRACE ?? SETTINGS.find((s) => s.env === "AGW_SHUTDOWN_GRACE")?.defaultValue ?? "");
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(preStop + grace + 5000);
  });
});

type RestrictedContainer = { name: string; securityContext?: { allowPrivilegeEscalation?: boolean; privileged?: boolean; runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string }; capabilities?: { drop?: string[]; add?: string[] } }; ports?: { hostPort?: number }[] };
type RestrictedPod = { hostNetwork?: boolean; hostPID?: boolean; hostIPC?: boolean; securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } }; containers: RestrictedContainer[]; initContainers?: RestrictedContainer[]; volumes?: Record<string, unknown>[] };

/**
 * The rules of the Kubernetes Pod Security Standard "restricted" (baseline included) that a pod
 * spec can break, as the API server's admission would check them.
 */
function restrictedViolations(pod: RestrictedPod): string[] {
  const out: string[] = [];
  for (const k of ["hostNetwork", "hostPID", "hostIPC"] as const) if (pod[k]) out.push(k);
  const allowedVolumes = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);
  for (const v of pod.volumes ?? []) for (const key of Object.keys(v)) if (key !== "name" && !allowedVolumes.has(key)) out.push(`volume ${String(v.name)}: ${key}`);
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) out.push(`${c.name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name}: allowPrivilegeEscalation`);
    if (!(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot)) out.push(`${c.name}: runAsNonRoot`);
    if ((sc.runAsUser ?? pod.securityContext?.runAsUser) === 0) out.push(`${c.name}: runAsUser 0`);
    const seccomp = (sc.seccompProfile ?? pod.securityContext?.seccompProfile)?.type;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") out.push(`${c.name}: seccompProfile`);
    if (!sc.capabilities?.drop?.includes("ALL")) out.push(`${c.name}: capabilities.drop ALL`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== "NET_BIND_SERVICE") out.push(`${c.name}: capabilities.add ${cap}`);
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${c.name}: hostPort`);
  }
  return out;
}
