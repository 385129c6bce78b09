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
