import { readFileSync } from "node:fs";

/** The version of this agent build (package.json of the repository it runs from). */
export const AGENT_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
})();

const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.+_-]*$/;

/** Reads a --version-file: its first line, if it is a well-formed version. */
export function readVersionFile(path: string): string | undefined {
  try {
    const line = readFileSync(path, "utf8").split("\n")[0]?.trim() ?? "";
    return line && line.length <= 64 && VERSION_PATTERN.test(line) ? line : undefined;
  } catch {
    return undefined;
  }
}
