import { existsSync, mkdirSync } from "node:fs";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService, Role } from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { ReleaseKeyService } from "../../gen/agentgateway/admin/v1/release_keys_pb.js";
import { SystemKeyService, TenantService, TenantState } from "../../gen/agentgateway/provider/v1/tenants_pb.js";
import { Reason, reasonOf } from "../../client/reasons.js";
import { SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import { gatewayClient, handshake, register, withSession } from "../../agent/lib/direct.js";
import { signReleaseManifest } from "../../cli/release.js";
import { generateKeyPair } from "../../client/protocol/ed25519.js";
import { mintToken, newIdentity } from "../support/agents.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { SimAgent } from "../support/sim-agent.js";

/**
 * The web admin in a real browser (Debian's chromium driven by playwright-core) against a real
 * gateway and PostgreSQL, walking an operator's day: sign in, approve a new agent after
 * comparing its code, watch it come online, run a rollout wave by wave, revoke the agent and
 * verify the audit chain. Screenshots of each page go to test/browser/artifacts/.
 */
const CHROMIUM = process.env.AGW_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = new URL("./artifacts/", import.meta.url).pathname;
const hasChromium = existsSync(CHROMIUM);
// CI sets AGW_REQUIRE_BROWSER=1, so a missing browser fails there instead of skipping quietly.
const required = process.env.AGW_REQUIRE_BROWSER === "1";
if (!hasChromium && !required) {
  console.warn(`browser tests skipped: no chromium at ${CHROMIUM} (apt-get install -y chromium, or set AGW_CHROMIUM); .ci/run installs it`);
}

// Polls wait for the page to catch up with the gateway; a loaded CI machine may need seconds.
const SLOW = { timeout: 10_000 };

let gw: TestGateway;
let browser: Browser;
let page: Page;
const agents: SimAgent[] = [];
const releaseKey = generateKeyPair();
const problems: string[] = [];
let tenantAdminKey = "";

async function shot(name: string): Promise<void> {
  // Let relative times and transitions settle so the picture shows a steady page.
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: false });
}

async function expectUnauthenticated(call: Promise<unknown>): Promise<void> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
}

async function go(label: string): Promise<void> {
  await page.getByRole("navigation").getByRole("link", { name: new RegExp(`^${label}`) }).click();
}

const KEY_FIELD = "API key or system key";

async function signIn(key: string): Promise<void> {
  await page.getByLabel(KEY_FIELD).fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("tenant").waitFor();
}

describe.skipIf(!hasChromium && !required)("the web admin in a browser", { timeout: 90_000 }, () => {
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    gw = await startTestGateway({ heartbeatFlushInterval: "100ms", livenessSweepInterval: "300ms", handshakeRatePerAgent: "1000/s:1000" });
    await gw.admin(ReleaseKeyService).registerReleaseKey({ name: "release-2026", publicKey: releaseKey.publicKey });
    for (let i = 0; i < 6; i++) {
      const a = await SimAgent.start(gw, { pinnedReleaseKeys: [releaseKey.publicKey] }, `edge-${String(i + 1).padStart(2, "0")}`);
      await a.connect();
      agents.push(a);
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    // CSP violations and script errors fail the suite at the end: the console must run under its own policy.
    await page.addInitScript({
      content: 'document.addEventListener("securitypolicyviolation", (e) => console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI));',
    });
    page.on("console", (m) => {
      if (m.type() === "error" && !/status of 40[0-9]|ERR_ABORTED|net::ERR/.test(m.text())) problems.push(m.text());
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const a of agents) a.disconnect();
    await gw?.stop();
  });

  it("signs in with an operator key kept in sessionStorage only, and shows tenant and role", async () => {
    await page.goto(`${gw.url}/admin/`);
    await shot("01-sign-in");
    await page.getByLabel(KEY_FIELD).fill("agwk_not-a-real-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent(), SLOW).toMatch(/Unauthenticated/);
    await signIn(gw.adminKey);
    expect(await page.getByTestId("tenant").textContent()).toBe("default");
    expect(await page.getByTestId("role").textContent()).toBe("admin");
    expect(await page.evaluate('sessionStorage.getItem("agentgateway.operatorKey")')).toBe(gw.adminKey);
    expect(await page.evaluate("localStorage.length")).toBe(0);
    await page.getByTestId("live-status").and(page.locator("[data-state=live]")).waitFor();
    await expect.poll(() => page.getByTestId("count-active").locator(".stat-value").textContent(), SLOW).toBe("6");
    await shot("02-overview");
  });

  it("shows a new pending agent without a reload, and approves it only with the code the agent printed", async () => {
    await go("Approvals");
    await page.getByText("Nothing is waiting").waitFor();
    const identity = newIdentity();
    const client = gatewayClient(gw.transport);
    const reg = await register(client, {
      token: await mintToken(gw, { requiresApproval: true, labels: { site: "ams" } }),
      identity,
      name: "probe-ams-7",
      host: { hostname: "ams-rack12-07", os: "linux", arch: "arm64", agentVersion: "1.0.0", labels: { tier: "edge" } },
    });
    const card = page.getByTestId("approval").filter({ hasText: "probe-ams-7" });
    await card.waitFor({ timeout: 10_000 });
    expect(await card.getByTestId("approval-code").textContent()).toBe(reg.verificationCode);
    await expect.poll(() => page.getByRole("navigation").getByRole("link", { name: /^Approvals/ }).textContent(), SLOW).toBe("Approvals1");
    await shot("03-approvals");

    await card.getByRole("button", { name: "Approve" }).click();
    const dialog = page.getByRole("dialog");
    expect(await dialog.getByTestId("verification-code").textContent()).toBe(reg.verificationCode);
    await dialog.getByLabel("Code the agent printed").fill("ZZZZ-ZZZZ");
    await dialog.getByRole("button", { name: "Approve" }).click();
    await expect.poll(() => dialog.getByRole("alert").textContent(), SLOW).toMatch(/FailedPrecondition.*does not match/);
    await dialog.getByLabel("Code the agent printed").fill(reg.verificationCode.toLowerCase());
    await shot("04-approve-dialog");
    await dialog.getByRole("button", { name: "Approve" }).click();
    await page.getByText("Nothing is waiting").waitFor();

    // The agent connects and reports: the agents table turns it ONLINE by itself.
    const session = await handshake(client, reg.agentId, identity);
    const approved = await SimAgent.adopt(gw, { identity, registration: reg, session }, { pinnedReleaseKeys: [releaseKey.publicKey] });
    await approved.connect();
    agents.push(approved);
    const now = timestampNow();
    await client.uploadEvents(
      {
        events: [
          { id: "e1", type: "probe.started", severity: EventSeverity.INFO, message: "probe loop started with 12 targets", occurredAt: now },
          { id: "e2", type: "probe.timeout", severity: EventSeverity.WARNING, message: "target 10.0.4.17 did not answer within 2 s", occurredAt: now },
        ],
      },
      withSession(session),
    );
    await client.uploadTelemetry(
      { points: ["cpu.utilization", "mem.used_bytes", "probe.rtt_ms"].map((name, i) => ({ id: `p${i}`, name, value: [0.42, 183_500_800, 12.7][i] ?? 0, observedAt: now })) },
      withSession(session),
    );
    await go("Agents");
    const row = page.locator(`[data-agent-id="${reg.agentId}"]`);
    await expect.poll(() => row.getByTestId("state").textContent(), { timeout: 10_000 }).toBe("active");
    await expect.poll(() => row.getByTestId("liveness").textContent(), { timeout: 15_000 }).toContain("online");
    await shot("05-agents");
    await page.getByPlaceholder("labels: site=ams, tier=edge").fill("site=ams");
    await expect.poll(() => page.getByTestId("agent-row").count(), SLOW).toBe(1);
    await page.getByPlaceholder("labels: site=ams, tier=edge").fill("");
  });

  it("runs a rollout from a signed manifest and shows the waves advance live", async () => {
    const signed = signReleaseManifest({ version: "2.0.0", artifactUrl: "https://releases.example.invalid/agent-2.0.0.tgz", artifactSha256: new Uint8Array(32).fill(9), artifactSize: 4096n, notes: "" }, releaseKey.privateKey);
    await go("Rollouts");
    await page.locator("textarea[name=manifest]").fill(toJsonString(SignedReleaseManifestSchema, signed, { prettySpaces: 2 }));
    await expect.poll(() => page.getByTestId("manifest-summary").textContent(), SLOW).toContain("2.0.0");
    // Two waves: a canary and the rest.
    await page.getByRole("button", { name: "Remove" }).nth(1).click();
    await page.getByLabel("wave 1 percent").fill("40");
    await page.getByRole("button", { name: "Preview plan" }).click();
    await page.getByTestId("plan").waitFor();
    expect(await page.getByTestId("plan").textContent()).toMatch(/canary: \d+ agents?/);
    await shot("06-rollout-plan");
    await page.getByRole("button", { name: "Create rollout" }).click();
    await expect.poll(() => page.getByTestId("rollout-state").textContent(), SLOW).toBe("planned");
    await page.getByRole("button", { name: "Start" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Start" }).click();
    await expect.poll(() => page.getByTestId("wave-0").getAttribute("data-state"), { timeout: 20_000 }).toBe("succeeded");
    await shot("07-rollout-wave-1");
    await page.getByRole("button", { name: "Advance" }).click();
    await expect.poll(() => page.getByTestId("rollout-state").textContent(), { timeout: 20_000 }).toBe("completed");
    expect(await page.getByTestId("wave-1").getAttribute("data-state")).toBe("succeeded");
    expect(agents.every((a) => a.version === "2.0.0")).toBe(true);
    await shot("08-rollout-done");
    await go("Overview");
    await expect.poll(() => page.locator(".bars").textContent(), SLOW).toContain("2.0.0");
  });

  it("halts a stuck rollout with a reason, resumes it only with a note, and cancels it", async () => {
    for (const a of agents) a.behaviour = { ...a.behaviour, hang: true };
    const signed = signReleaseManifest({ version: "2.1.0", artifactUrl: "https://releases.example.invalid/agent-2.1.0.tgz", artifactSha256: new Uint8Array(32).fill(3), artifactSize: 4096n, notes: "" }, releaseKey.privateKey);
    await go("Rollouts");
    await page.locator("textarea[name=manifest]").fill(toJsonString(SignedReleaseManifestSchema, signed));
    await page.getByRole("button", { name: "Create rollout" }).click();
    await expect.poll(() => page.getByTestId("rollout-state").textContent(), SLOW).toBe("planned");
    await page.getByRole("button", { name: "Start" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Start" }).click();
    await expect.poll(() => page.getByTestId("rollout-state").textContent(), SLOW).toBe("running");
    await page.getByRole("button", { name: "Halt" }).click();
    let dialog = page.getByRole("dialog");
    await dialog.getByLabel(/Why halt/).fill("canary hosts lost their uplink");
    await dialog.getByRole("button", { name: "Halt" }).click();
    await expect.poll(() => page.getByTestId("rollout-state").textContent(), SLOW).toBe("halted");
    expect(await page.getByTestId("halt-reason").textContent()).toContain("canary hosts lost their uplink");
    await shot("09-rollout-halted");
    await page.getByRole("button", { name: "Resume" }).click();
    dialog = page.getByRole("dialog");
    expect(await dialog.getByRole("button", { name: "Resume" }).isDisabled()).toBe(true);
    await dialog.getByLabel(/safe to go on/).fill("uplink restored, checked by hand");
    await dialog.getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => page.getByTestId("rollout-state").textContent(), SLOW).toBe("running");
    expect(await page.getByText("uplink restored, checked by hand").count()).toBe(1);
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).last().click();
    await expect.poll(() => page.getByTestId("rollout-state").textContent(), SLOW).toBe("cancelled");
    for (const a of agents) a.behaviour = { ...a.behaviour, hang: false };
  });

  it("revokes the agent with a reason, and the table shows it at once", async () => {
    const target = agents.at(-1);
    if (!target) throw new Error("no approved agent");
    await page.goto(`${gw.url}/admin/agents/${target.id}`);
    await page.getByTestId("agent-name").waitFor();
    await page.getByText("probe.timeout").waitFor();
    await page.getByText("probe.rtt_ms").waitFor();
    expect(await page.getByText("ams-rack12-07 (linux/arm64)").count()).toBe(1);
    // Its queued commands: the 2.0.0 directive it applied, nothing of another agent's.
    await expect.poll(() => page.getByTestId("command-row").and(page.locator("[data-state=APPLIED]")).count(), SLOW).toBeGreaterThan(0);
    expect(await page.getByTestId("commands-table").getByRole("link", { name: "2.0.0" }).getAttribute("href")).toMatch(/^\/admin\/rollouts\/[0-9a-f-]{36}$/);
    // Its own audit records, and only its own.
    await expect.poll(() => page.getByTestId("agent-audit-table").textContent(), SLOW).toContain("agent.approved");
    expect(await page.getByTestId("agent-audit-table").textContent()).toContain("agent.registered");
    expect(await page.getByTestId("agent-audit-table").textContent()).not.toContain("rollout.");
    await shot("10-agent-detail");
    await page.getByTestId("agent-audit-table").scrollIntoViewIfNeeded();
    await shot("10a-agent-commands-audit");
    // A peer that is offline during the revocation will be told when it reconnects.
    const offlinePeer = agents[1];
    if (!offlinePeer) throw new Error("no peer");
    offlinePeer.disconnect();
    await page.getByRole("button", { name: "Revoke" }).click();
    const dialog = page.getByRole("dialog");
    expect(await dialog.getByRole("button", { name: "Revoke" }).isDisabled()).toBe(true);
    await dialog.getByLabel(/Reason/).fill("key leaked in a support ticket");
    await dialog.getByRole("button", { name: "Revoke" }).click();
    await expect.poll(() => page.getByTestId("state").first().textContent(), SLOW).toBe("revoked");
    const { agent } = await gw.admin(AgentService).getAgent({ id: target.id });
    expect(agent?.revokeReason).toBe("key leaked in a support ticket");
    expect(await page.getByRole("button", { name: "Un-revoke" }).isVisible()).toBe(true);
    // The revocation's audit record appears on the page by itself (the live change triggers the read).
    await expect.poll(() => page.getByTestId("agent-audit-table").textContent(), SLOW).toContain("agent.revoked");

    // The offline peer's page: the notice waits for it, PENDING; once it reconnects, it is acknowledged.
    await page.goto(`${gw.url}/admin/agents/${offlinePeer.id}`);
    await page.getByTestId("agent-name").waitFor();
    const notice = page.getByTestId("command-row").filter({ hasText: `stop trusting ${target.id.slice(0, 8)}` });
    await expect.poll(() => notice.getAttribute("data-state"), SLOW).toBe("PENDING");
    await page.getByTestId("commands-pending-only").check();
    await expect.poll(() => page.getByTestId("command-row").count(), SLOW).toBe(1);
    await page.getByTestId("commands-table").scrollIntoViewIfNeeded();
    await shot("10b-agent-pending-command");
    await offlinePeer.connect();
    await page.getByTestId("commands-empty").or(page.getByTestId("commands-table")).first().waitFor();
    await expect
      .poll(async () => {
        await page.getByRole("button", { name: "Refresh" }).click();
        return page.getByTestId("command-row").count();
      }, SLOW)
      .toBe(0);
    expect(await page.getByTestId("commands-empty").textContent()).toMatch(/Nothing pending/);
    await page.getByTestId("commands-pending-only").uncheck();
    await expect.poll(() => notice.getAttribute("data-state"), SLOW).toBe("APPLIED");
  });

  it("mints an enrollment token whose secret is shown once", async () => {
    await go("Tokens");
    await page.locator("input[name=description]").fill("rack 12 probes");
    await page.getByRole("button", { name: "Create token" }).click();
    const secret = await page.getByTestId("token-secret").textContent();
    expect(secret).toMatch(/^agwe_/);
    await shot("11-token-created");
    await page.getByRole("button", { name: "Done — hide the secret" }).click();
    await expect.poll(() => page.getByTestId("token-secret").count(), SLOW).toBe(0);
    expect(await page.content()).not.toContain(secret ?? "-");
    await expect.poll(() => page.getByTestId("tokens-table").textContent(), SLOW).toContain("rack 12 probes");
    await shot("12-tokens");
    await page.getByTestId("token-row").filter({ hasText: "rack 12 probes" }).getByRole("button", { name: "Revoke" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
    await expect.poll(() => page.getByTestId("tokens-table").textContent(), SLOW).not.toContain("rack 12 probes");
    await page.getByLabel("show used, expired and revoked").check();
    await expect.poll(() => page.getByTestId("token-row").filter({ hasText: "rack 12 probes" }).getByText("revoked").count(), SLOW).toBe(1);
  });

  it("creates an operator API key shown once, and revokes it so the gateway refuses it", async () => {
    await go("API keys");
    await page.getByTestId("keys-table").getByText("(this key)").waitFor();
    // The signed-in key cannot revoke itself: no button on its row.
    const own = page.getByTestId("key-row").filter({ hasText: "(this key)" });
    expect(await own.getByRole("button", { name: "Revoke" }).count()).toBe(0);
    await page.locator("input[name=key-name]").fill("ci-deployer");
    await page.locator("select[name=key-role]").selectOption({ label: "editor" });
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = (await page.getByTestId("key-secret").textContent()) ?? "";
    expect(secret).toMatch(/^agwk_/);
    expect((await gw.admin(ApiKeyService, secret).whoAmI({})).key?.role).toBe(Role.EDITOR);
    await shot("12b-api-key-created");
    await page.getByRole("button", { name: "Done — hide the key" }).click();
    await expect.poll(() => page.getByTestId("key-secret").count(), SLOW).toBe(0);
    expect(await page.content()).not.toContain(secret);
    const row = page.getByTestId("key-row").filter({ hasText: "ci-deployer" });
    await expect.poll(() => row.textContent(), SLOW).toContain("editor");
    await shot("12c-api-keys");
    await row.getByRole("button", { name: "Revoke" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
    await expect.poll(() => page.getByTestId("keys-table").textContent(), SLOW).not.toContain("ci-deployer");
    await expectUnauthenticated(gw.admin(ApiKeyService, secret).whoAmI({}));
    await page.getByLabel("show revoked").check();
    await expect.poll(() => row.textContent(), SLOW).toMatch(/revoked/);
  });

  it("registers a release key from its hex public key, refuses a malformed one, and revokes it", async () => {
    await go("Release keys");
    await page.getByTestId("release-keys-table").getByText("release-2026").waitFor();
    const fresh = generateKeyPair();
    const hexKey = Buffer.from(fresh.publicKey).toString("hex");
    await page.locator("input[name=release-key-name]").fill("release-2027");
    await page.locator("input[name=release-key-public]").fill(hexKey.slice(0, 60));
    expect(await page.getByRole("button", { name: "Register" }).isDisabled()).toBe(true);
    expect(await page.getByRole("alert").textContent()).toMatch(/64 hex digits/);
    await page.locator("input[name=release-key-public]").fill(hexKey);
    await page.getByRole("button", { name: "Register" }).click();
    const row = page.getByTestId("release-key-row").filter({ hasText: "release-2027" });
    await row.waitFor(SLOW);
    expect(await row.getAttribute("data-name")).toBe("release-2027");
    const listed = await gw.admin(ReleaseKeyService).listReleaseKeys({});
    expect(listed.keys.find((k) => k.name === "release-2027")?.publicKey).toEqual(fresh.publicKey);
    await shot("12d-release-keys");
    await row.getByRole("button", { name: "Revoke" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
    await expect.poll(() => page.getByTestId("release-keys-table").textContent(), SLOW).not.toContain("release-2027");
    const after = await gw.admin(ReleaseKeyService).listReleaseKeys({ includeRevoked: true });
    expect(after.keys.find((k) => k.name === "release-2027")?.revokedAt).toBeDefined();
    expect(after.keys.find((k) => k.name === "release-2026")?.revokedAt).toBeUndefined();
  });

  it("pages through the audit log and verifies the chain", async () => {
    await go("Audit");
    await page.getByTestId("audit-row").first().waitFor();
    await page.getByRole("button", { name: "Verify chain" }).click();
    const result = page.getByTestId("verify-result");
    await expect.poll(() => result.getAttribute("data-ok"), SLOW).toBe("true");
    expect(await result.textContent()).toMatch(/Chain intact: \d+ records verified/);
    await page.getByRole("button", { name: "Later →" }).click();
    await expect.poll(() => page.getByTestId("audit-table").textContent(), SLOW).toContain("agent.revoked");
    await shot("13-audit");
  });

  it("says when the live stream drops, and reconnects by itself", async () => {
    await go("Agents");
    gw.gateway.context.agentWatch.drain();
    await page.getByTestId("disconnected").waitFor({ timeout: 10_000 });
    await shot("14-disconnected");
    await page.locator("[data-testid=live-status][data-state=live]").waitFor({ timeout: 20_000 });
    expect(await page.getByTestId("disconnected").count()).toBe(0);
    await go("Overview");
    await expect.poll(() => page.getByTestId("count-revoked").locator(".stat-value").textContent(), SLOW).toBe("1");
    await shot("15-overview-after");
  });

  it("offers a viewer only what a viewer may do, and sign-out forgets the key", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    expect(await page.evaluate('sessionStorage.getItem("agentgateway.operatorKey")')).toBeNull();
    const { secret } = await gw.admin(ApiKeyService).createApiKey({ name: "night-shift", role: Role.VIEWER });
    await signIn(secret);
    expect(await page.getByTestId("role").textContent()).toBe("viewer");
    expect(await page.getByRole("navigation").getByRole("link", { name: "Audit" }).count()).toBe(0);
    expect(await page.getByRole("navigation").getByRole("link", { name: "API keys" }).count()).toBe(0);
    await go("Release keys");
    await page.getByTestId("release-keys-table").getByText("release-2026").waitFor();
    expect(await page.getByRole("button", { name: /Register|Revoke/ }).count()).toBe(0);
    await go("Tokens");
    await page.getByTestId("tokens-table").waitFor();
    expect(await page.getByRole("button", { name: "Create token" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Revoke" }).count()).toBe(0);
    const someone = agents[0];
    await page.goto(`${gw.url}/admin/agents/${someone?.id}`);
    await page.getByTestId("agent-name").waitFor();
    expect(await page.getByRole("button", { name: /Revoke|Retire/ }).count()).toBe(0);
    // Commands are for viewers too; the audit log is not.
    await page.getByTestId("commands-table").waitFor(SLOW);
    expect(await page.getByText("The audit log needs a key with role admin.").count()).toBe(1);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel(KEY_FIELD).waitFor();
  });

  it("signs the provider in with the system key to the Tenants page only, creates a tenant whose key is shown once, suspends and resumes it", async () => {
    await page.getByLabel(KEY_FIELD).fill(gw.systemKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("provider").waitFor();
    const nav = page.getByRole("navigation");
    // The provider's shell has the provider pages and no tenant page: not even the overview.
    expect(await nav.getByRole("link").allTextContents()).toEqual(["Tenants", "Provider audit"]);
    await page.getByTestId("tenants-table").getByText("default").waitFor(SLOW);
    await page.goto(`${gw.url}/admin/agents`);
    await page.getByTestId("provider").waitFor();
    await page.getByText("Not found").waitFor();
    expect(await page.getByTestId("live-status").count()).toBe(0);
    await go("Tenants");

    await page.getByLabel("Name", { exact: true }).fill("browser-co");
    await page.getByRole("button", { name: "Create tenant" }).click();
    const secret = (await page.getByTestId("tenant-secret").textContent({ timeout: 10_000 })) ?? "";
    expect(secret).toMatch(/^agwk_/);
    const me = await gw.admin(ApiKeyService, secret).whoAmI({});
    expect(me.tenantName).toBe("browser-co");
    await shot("16-tenant-created");
    await page.getByRole("button", { name: "Done — hide the key" }).click();
    // Shown once: gone from the page.
    await expect.poll(() => page.getByTestId("tenant-secret").count(), SLOW).toBe(0);
    expect(await page.content()).not.toContain(secret);
    const row = page.getByTestId("tenant-row").and(page.locator('[data-name="browser-co"]'));
    await row.waitFor(SLOW);

    await row.getByRole("button", { name: "Suspend" }).click();
    const dialog = page.getByRole("dialog");
    expect(await dialog.getByRole("button", { name: "Suspend" }).isDisabled()).toBe(true);
    await dialog.getByLabel(/Reason/).fill("invoice 2026-11 unpaid");
    await dialog.getByRole("button", { name: "Suspend" }).click();
    await expect.poll(() => row.getByTestId("tenant-state").textContent(), SLOW).toMatch(/suspended/);
    await row.getByText("invoice 2026-11 unpaid").waitFor();
    const refused = await gw.admin(ApiKeyService, secret).whoAmI({}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(ConnectError.from(refused).code).toBe(Code.PermissionDenied);
    expect(reasonOf(refused)).toBe(Reason.TENANT_SUSPENDED);
    await shot("17-tenant-suspended");

    await row.getByRole("button", { name: "Resume" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => row.getByTestId("tenant-state").textContent(), SLOW).toBe("active");
    expect((await gw.admin(ApiKeyService, secret).whoAmI({})).tenantName).toBe("browser-co");
    const listed = await gw.admin(TenantService, gw.systemKey).listTenants({});
    expect(listed.tenants.find((t) => t.name === "browser-co")?.state).toBe(TenantState.ACTIVE);
    tenantAdminKey = secret;
  });

  it("refuses to delete a tenant that has agents, showing why, and deletes an empty one", async () => {
    const fleet = page.getByTestId("tenant-row").and(page.locator('[data-name="default"]'));
    await fleet.getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("button", { name: "Delete" }).click();
    await expect.poll(() => dialog.getByRole("alert").textContent(), SLOW).toMatch(/FailedPrecondition.*agent\(s\).*suspend it instead/);
    await shot("18-tenant-delete-refused");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await gw.admin(ApiKeyService).whoAmI({})).tenantName).toBe("default");

    await gw.admin(TenantService, gw.systemKey).createTenant({ name: "short-lived" });
    await page.reload();
    await page.getByTestId("provider").waitFor();
    const empty = page.getByTestId("tenant-row").and(page.locator('[data-name="short-lived"]'));
    await empty.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    await empty.waitFor({ state: "detached", timeout: 10_000 });
    const names = (await gw.admin(TenantService, gw.systemKey).listTenants({})).tenants.map((t) => t.name);
    expect(names).not.toContain("short-lived");
  });

  it("shows the provider audit chain and verifies it", async () => {
    await go("Provider audit");
    const actions = page.getByTestId("audit-table").getByTestId("audit-row");
    await expect.poll(async () => (await actions.allTextContents()).join(" "), SLOW).toMatch(/tenant\.created.*tenant\.suspended.*tenant\.resumed.*tenant\.deleted/);
    await page.getByRole("button", { name: "Verify chain" }).click();
    await expect.poll(() => page.getByTestId("verify-result").getAttribute("data-ok"), SLOW).toBe("true");
    await shot("19-provider-audit");
  });

  it("signs the provider out when its system key is rotated away, and refuses that key at sign-in", async () => {
    const rotated = await gw.admin(SystemKeyService, gw.systemKey).rotateSystemKey({ name: "after-browser-test" });
    // Still on the provider audit page (nothing refetches by itself there): the next call with
    // the old key is refused, and the console signs out and says why.
    await page.getByRole("button", { name: "Verify chain" }).click();
    await page.getByText("The gateway no longer accepts this key").waitFor(SLOW);
    expect(await page.evaluate('sessionStorage.getItem("agentgateway.operatorKey")')).toBeNull();
    await page.getByLabel(KEY_FIELD).fill(gw.systemKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent(), SLOW).toMatch(/Unauthenticated/);
    await page.getByLabel(KEY_FIELD).fill(rotated.secret);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("provider").waitFor();
    expect(await page.getByTestId("provider").locator("xpath=..").textContent()).toContain("after-browser-test");
    await page.getByRole("button", { name: "Sign out" }).click();
  });

  it("never shows the provider pages to a tenant admin", async () => {
    await signIn(tenantAdminKey);
    expect(await page.getByTestId("tenant").textContent()).toBe("browser-co");
    expect(await page.getByTestId("role").textContent()).toBe("admin");
    const links = await page.getByRole("navigation").getByRole("link").allTextContents();
    expect(links.join(" ")).not.toMatch(/Tenants|Provider audit/);
    expect(links).toContain("API keys");
    for (const route of ["tenants", "provider-audit"]) {
      await page.goto(`${gw.url}/admin/${route}`);
      await page.getByTestId("tenant").waitFor();
      await page.getByText("Not found").waitFor();
      expect(await page.getByTestId("tenants-table").count()).toBe(0);
    }
    // And the gateway refuses the provider RPCs to this key anyway.
    const denied = await gw.admin(TenantService, tenantAdminKey).listTenants({}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(reasonOf(denied)).toBe(Reason.SYSTEM_KEY_REQUIRED);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel(KEY_FIELD).waitFor();
  });

  it("ran without script errors or CSP violations", () => {
    expect(problems).toEqual([]);
  });
});
