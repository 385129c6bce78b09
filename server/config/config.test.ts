import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, SETTINGS } from "./config.js";

describe("loadConfig", () => {
  it("reads the environment, then flags, then overrides", () => {
    const config = loadConfig({ logLevel: "warn" }, { AGW_LISTEN: "0.0.0.0:9000", AGW_SESSION_TTL: "2h", AGW_LOG_LEVEL: "debug" }, ["--listen", "127.0.0.1:9001"]);
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 9001 });
    expect(config.sessionTtlMs).toBe(7_200_000);
    expect(config.logLevel).toBe("warn");
  });

  it("reads retention ages, with 0 and off meaning keep for ever, and refuses anything else", () => {
    const defaults = loadConfig({}, {});
    expect(defaults.retention).toEqual({ telemetryMs: 30 * 86_400_000, eventsMs: 30 * 86_400_000, commandsMs: 7 * 86_400_000, sessionsMs: 3_600_000, intervalMs: 300_000, batchSize: 1000, batchPauseMs: 100 });
    const off = loadConfig({}, { AGW_RETENTION_TELEMETRY: "off", AGW_RETENTION_EVENTS: "0", AGW_RETENTION_BATCH_PAUSE: "0" });
    expect(off.retention).toMatchObject({ telemetryMs: 0, eventsMs: 0, batchPauseMs: 0 });
    expect(() => loadConfig({}, { AGW_RETENTION_COMMANDS: "-1d" })).toThrow(/AGW_RETENTION_COMMANDS \(--retention-commands\)/);
    expect(() => loadConfig({}, { AGW_RETENTION_BATCH_SIZE: "0" })).toThrow(/AGW_RETENTION_BATCH_SIZE/);
  });

  it("names the variable and flag of a bad value", () => {
    expect(() => loadConfig({}, { AGW_LISTEN: "nope" })).toThrow(/AGW_LISTEN \(--listen\)/);
    expect(() => loadConfig({}, { AGW_SESSION_TTL: "soon" })).toThrow(ConfigError);
    expect(() => loadConfig({}, { AGW_BOOTSTRAP_ADMIN_KEY: "short" })).toThrow(/32 characters/);
    expect(() => loadConfig({}, { AGW_REGISTER_RATE: "5" })).toThrow(/5\/s:20/);
  });

  it("is documented: the README's table lists every variable and its flag", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    for (const s of SETTINGS) {
      expect(readme).toContain(`\`${s.env}\``);
      expect(readme).toContain(`\`--${s.flag}\``);
    }
  });
});
