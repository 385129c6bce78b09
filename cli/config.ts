/**
 * Where agwctl finds the gateway and the API key: flags win over the environment, which wins
 * over the config file written by `agwctl login` (docs/cli.md, "Configuration"). The saved key
 * is only ever sent to the server it was saved for, so pointing `--server` or AGW_SERVER
 * somewhere else cannot leak it.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { TrustOptions } from "../client/transport.js";
import { CliError, EXIT, usage } from "./errors.js";

/** What `agwctl login` saves. */
export interface ConfigFile {
  server: string;
  apiKey: string;
  caFile?: string;
  caPins?: string[];
  systemCa?: boolean;
  allowInsecureHttp?: boolean;
}

/** The connection flags every command accepts. */
export interface ConnectionFlags {
  server?: string;
  apiKey?: string;
  caFile?: string;
  caPin?: string[];
  systemCa?: boolean;
  allowInsecureHttp?: boolean;
}

/** Where each setting came from, for `whoami` and error messages. */
export type Source = "flag" | "env" | "file";

/** The settings a command connects with. */
export interface Settings {
  server: string;
  serverSource: Source;
  apiKey?: string;
  apiKeySource?: Source;
  trust: TrustOptions;
  /** Set when the file holds a key for another server than the one in use. */
  fileServer?: string;
}

/** The config file's path: $XDG_CONFIG_HOME/agwctl/config.json, else ~/.config/agwctl/config.json. */
export function configPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME?.startsWith("/") ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), ".config");
  return join(base, "agwctl", "config.json");
}

const MAX_CONFIG_BYTES = 64 * 1024;

/** Reads the config file; undefined if there is none. Refuses a file others can read. */
export function readConfig(path: string): ConfigFile | undefined {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  // Like ssh with a private key: a key file readable by others is already leaked, and using it
  // silently would hide that.
  if ((stat.mode & 0o077) !== 0) {
    throw new CliError(
      EXIT.USAGE,
      `${path} is readable by other users (mode ${(stat.mode & 0o777).toString(8)}): run \`chmod 600 ${path}\` and consider rotating the key`,
    );
  }
  if (stat.size > MAX_CONFIG_BYTES) throw usage(`${path} is larger than ${MAX_CONFIG_BYTES} bytes; it is not an agwctl config file`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw usage(`${path} is not valid JSON: fix it or run \`agwctl logout\` and log in again`);
  }
  return checkConfig(parsed, path);
}

function checkConfig(value: unknown, path: string): ConfigFile {
  const bad = (what: string) => usage(`${path}: ${what}; run \`agwctl logout\` and log in again`);
  if (typeof value !== "object" || value === null) throw bad("not an object");
  const v = value as Record<string, unknown>;
  if (typeof v.server !== "string" || typeof v.apiKey !== "string") throw bad('"server" and "apiKey" must be strings');
  if (v.caFile !== undefined && typeof v.caFile !== "string") throw bad('"caFile" must be a string');
  if (v.caPins !== undefined && !(Array.isArray(v.caPins) && v.caPins.every((p) => typeof p === "string"))) throw bad('"caPins" must be a list of strings');
  return {
    server: v.server,
    apiKey: v.apiKey,
    ...(typeof v.caFile === "string" ? { caFile: v.caFile } : {}),
    ...(Array.isArray(v.caPins) ? { caPins: v.caPins as string[] } : {}),
    ...(v.systemCa === true ? { systemCa: true } : {}),
    ...(v.allowInsecureHttp === true ? { allowInsecureHttp: true } : {}),
  };
}

/** Writes the config file with mode 0600 (directory 0700), atomically. */
export function writeConfig(path: string, config: ConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  // Created 0600 from the start (never briefly world-readable) and renamed over the old one.
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(config, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Removes the config file; whether there was one. */
export function removeConfig(path: string): boolean {
  try {
    statSync(path);
  } catch {
    return false;
  }
  rmSync(path);
  return true;
}

/** The origin of a server URL, for comparing "the same server"; the input if it does not parse. */
export function sameServer(a: string, b: string): boolean {
  const origin = (s: string) => {
    try {
      return new URL(s).origin;
    } catch {
      return s;
    }
  };
  return origin(a) === origin(b);
}

/**
 * Resolves the settings: each value from the flag, else the environment (AGW_SERVER,
 * AGW_API_KEY, AGW_CA_FILE, AGW_CA_PIN), else the file. The file's key and trust settings
 * apply only when the server in use is the file's server.
 */
export function resolveSettings(flags: ConnectionFlags, env: NodeJS.ProcessEnv, file: ConfigFile | undefined): Settings {
  const envServer = env.AGW_SERVER?.trim() || undefined;
  const envKey = env.AGW_API_KEY?.trim() || undefined;
  let server: string;
  let serverSource: Source;
  if (flags.server) [server, serverSource] = [flags.server, "flag"];
  else if (envServer) [server, serverSource] = [envServer, "env"];
  else if (file) [server, serverSource] = [file.server, "file"];
  else throw usage("no gateway given: run `agwctl login --server URL`, or pass --server or set AGW_SERVER");
  const fileApplies = file !== undefined && sameServer(file.server, server);
  const envPins = env.AGW_CA_PIN
    ? env.AGW_CA_PIN.split(",")
        .map((p) => p.trim())
        .filter(Boolean)
    : [];
  const pins = flags.caPin?.length ? flags.caPin : envPins.length ? envPins : fileApplies ? (file.caPins ?? []) : [];
  const caFile = flags.caFile ?? (env.AGW_CA_FILE || undefined) ?? (fileApplies ? file.caFile : undefined);
  const trust: TrustOptions = {
    pins,
    ...(caFile ? { caFile } : {}),
    ...(flags.systemCa || (fileApplies && file.systemCa) ? { systemCa: true } : {}),
    ...(flags.allowInsecureHttp || (fileApplies && file.allowInsecureHttp) ? { allowInsecureHttp: true } : {}),
  };
  const settings: Settings = { server, serverSource, trust };
  if (flags.apiKey) Object.assign(settings, { apiKey: flags.apiKey, apiKeySource: "flag" });
  else if (envKey) Object.assign(settings, { apiKey: envKey, apiKeySource: "env" });
  else if (fileApplies) Object.assign(settings, { apiKey: file.apiKey, apiKeySource: "file" });
  else if (file) settings.fileServer = file.server;
  return settings;
}
