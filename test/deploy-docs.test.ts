/** docs/operations.md stays true to the code: its settings table and the files it names. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configTableMarkdown } from "../server/config/config.js";
import { REPO } from "./support/deploy-files.js";

const doc = readFileSync(join(REPO, "docs", "operations.md"), "utf8");

describe("docs/operations.md", () => {
  it("carries the settings table exactly as `agentgateway config-table` prints it", () => {
    const m = /<!-- config-table[^>]*-->\n([\s\S]*?)\n<!-- \/config-table -->/.exec(doc);
    expect(m, "config-table markers").not.toBeNull();
    expect(m?.[1], "run: npx tsx scripts/sync-deploy-settings.ts").toBe(configTableMarkdown());
  });

  it("names only repository paths that exist", () => {
    const paths = new Set([...doc.matchAll(/`((?:deploy|scripts|test|server|bench|docs)\/[A-Za-z0-9_./*-]+)`/g)].map((m) => m[1] ?? ""));
    expect(paths.size).toBeGreaterThan(10);
    for (const path of paths) {
      if (path.includes("*")) continue;
      expect(existsSync(join(REPO, path)), path).toBe(true);
    }
  });

  it("is linked from the README", () => {
    expect(readFileSync(join(REPO, "README.md"), "utf8")).toContain("(docs/operations.md)");
  });
});
