import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const ROOT = new URL("..", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), "utf8");
const documents = ["README.md", ...readdirSync(new URL("docs/", ROOT)).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

/** The bodies of the fenced code blocks of a Markdown text; throws on an unclosed fence. */
function codeBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  let open: string[] | undefined;
  for (const line of markdown.split("\n")) {
    if (/^\s*```/.test(line)) {
      if (open) {
        blocks.push(open.join("\n"));
        open = undefined;
      } else {
        open = [];
      }
    } else {
      open?.push(line);
    }
  }
  if (open) throw new Error("a code fence is never closed");
  return blocks;
}

describe("the docs render", () => {
  it.each(documents)("%s: every code fence is a real fence and is closed", (path) => {
    const text = read(path);
    expect(text).not.toMatch(/\\`\\`\\`/);
    expect(() => codeBlocks(text)).not.toThrow();
  });

  it("README: setting up is exactly `npm ci && npm start` and `npm test`", () => {
    const readme = read("README.md");
    const setUp = /\n## Set up\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? "";
    expect(codeBlocks(setUp).map((b) => b.trim())).toEqual(["npm ci && npm start", "npm test"]);
  });

  it("README: every `npm run` script it names exists", () => {
    const scripts = Object.keys((JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts);
    const named = [...read("README.md").matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(0);
    for (const name of named) expect(scripts).toContain(name);
  });
});
