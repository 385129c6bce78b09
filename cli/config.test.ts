import { chmodSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { configPath, readConfig, removeConfig, resolveSettings, writeConfig } from "./config.js";
import { CliError, EXIT } from "./errors.js";

const dir = mkdtempSync(join(tmpdir(), "agwctl-config-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

const file = { server: "https://gw.example.com:7070", apiKey: "agwk_file", caPins: ["ab".repeat(32)], caFile: "/etc/agw/ca.pem" };

function usageError(fn: () => unknown): CliError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return err as CliError;
  }
  throw new Error("expected a CliError");
}

describe("config path", () => {
  it("uses $XDG_CONFIG_HOME, else ~/.config, and ignores a relative XDG_CONFIG_HOME", () => {
    expect(configPath({ XDG_CONFIG_HOME: "/xdg", HOME: "/home/op" })).toBe("/xdg/agwctl/config.json");
    expect(configPath({ HOME: "/home/op" })).toBe("/home/op/.config/agwctl/config.json");
    expect(configPath({ XDG_CONFIG_HOME: "relative", HOME: "/home/op" })).toBe("/home/op/.config/agwctl/config.json");
  });
});

describe("precedence", () => {
  it("takes the server and key from the flag, else the environment, else the file", () => {
    const flagged = resolveSettings(
      { server: "https://gw.example.com:7070", apiKey: "agwk_flag" },
      { AGW_SERVER: "https://env.example", AGW_API_KEY: "agwk_env" },
      file,
    );
    expect(flagged).toMatchObject({ server: "https://gw.example.com:7070", serverSource: "flag", apiKey: "agwk_flag", apiKeySource: "flag" });
    const fromEnv = resolveSettings({}, { AGW_SERVER: "https://gw.example.com:7070/", AGW_API_KEY: "agwk_env" }, file);
    expect(fromEnv).toMatchObject({ serverSource: "env", apiKey: "agwk_env", apiKeySource: "env" });
    const fromFile = resolveSettings({}, {}, file);
    expect(fromFile).toMatchObject({ server: file.server, serverSource: "file", apiKey: "agwk_file", apiKeySource: "file" });
    expect(fromFile.trust).toEqual({ pins: file.caPins, caFile: file.caFile });
  });

  it("never applies the file's key or trust to another server", () => {
    for (const settings of [resolveSettings({ server: "https://evil.example" }, {}, file), resolveSettings({}, { AGW_SERVER: "https://evil.example" }, file)]) {
      expect(settings.apiKey).toBeUndefined();
      expect(settings.fileServer).toBe(file.server);
      expect(settings.trust).toEqual({ pins: [] });
    }
    // Another port of the same host is another server.
    expect(resolveSettings({ server: "https://gw.example.com:7071" }, {}, file).apiKey).toBeUndefined();
  });

  it("takes pins and the CA file from flags over the environment over the file", () => {
    const pin = "cd".repeat(32);
    expect(resolveSettings({ caPin: [pin] }, { AGW_CA_PIN: "ef".repeat(32) }, file).trust.pins).toEqual([pin]);
    expect(resolveSettings({}, { AGW_CA_PIN: `${"ef".repeat(32)}, ${pin}` }, file).trust.pins).toEqual(["ef".repeat(32), pin]);
    expect(resolveSettings({ caFile: "/flag.pem" }, { AGW_CA_FILE: "/env.pem" }, file).trust.caFile).toBe("/flag.pem");
    expect(resolveSettings({}, { AGW_CA_FILE: "/env.pem" }, file).trust.caFile).toBe("/env.pem");
  });

  it("is a usage error without any server", () => {
    const err = usageError(() => resolveSettings({}, {}, undefined));
    expect(err.exitCode).toBe(EXIT.USAGE);
    expect(err.message).toMatch(/agwctl login --server URL/);
  });
});

describe("the file", () => {
  it("is written 0600 in a 0700 directory, also when replaced, and reads back", () => {
    const path = join(dir, "a", "agwctl", "config.json");
    writeConfig(path, file);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "a", "agwctl")).mode & 0o777).toBe(0o700);
    writeConfig(path, { ...file, apiKey: "agwk_second" });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readConfig(path)).toEqual({ ...file, apiKey: "agwk_second" });
    expect(removeConfig(path)).toBe(true);
    expect(readConfig(path)).toBeUndefined();
    expect(removeConfig(path)).toBe(false);
  });

  it("is refused when group or others can read it, without printing the key", () => {
    const path = join(dir, "b.json");
    writeConfig(path, file);
    chmodSync(path, 0o640);
    const err = usageError(() => readConfig(path));
    expect(err.message).toMatch(/readable by other users \(mode 640\)/);
    expect(err.message).not.toContain(file.apiKey);
  });

  it("is refused when it is not agwctl's JSON", () => {
    const path = join(dir, "c.json");
    writeFileSync(path, "{not json", { mode: 0o600 });
    expect(usageError(() => readConfig(path)).message).toMatch(/not valid JSON/);
    writeFileSync(path, JSON.stringify({ server: 1, apiKey: "x" }), { mode: 0o600 });
    expect(usageError(() => readConfig(path)).message).toMatch(/"server" and "apiKey" must be strings/);
    writeFileSync(path, JSON.stringify({ server: "http://x", apiKey: "x", caPins: "nope" }), { mode: 0o600 });
    expect(usageError(() => readConfig(path)).message).toMatch(/caPins/);
  });
});
