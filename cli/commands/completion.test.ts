import { execFileSync, spawnSync } from "node:child_process";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../program.js";
import { bashCompletion, zshCompletion } from "./completion.js";

const program = buildProgram({ stdout: { write: () => true }, stderr: { write: () => true }, stdin: new PassThrough(), env: {} });
const hasZsh = spawnSync("zsh", ["--version"]).status === 0;

/** What bash completes for the words typed so far (the last one is being completed). */
function bash(...words: string[]): string[] {
  const script = `${bashCompletion(program)}
COMP_WORDS=(agwctl ${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length}; _agwctl; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync("bash", ["--norc", "-c", script], { encoding: "utf8" }).split("\n").filter(Boolean);
}

/** What zsh offers, with _describe/compadd/_files stubbed to print their candidates. */
function zsh(...words: string[]): string[] {
  const script = `_describe() { local -a items; items=("\${(@P)4}"); for i in "\${items[@]}"; do print -r -- "\${i%%:*}"; done; }
compadd() { shift; for i in "$@"; do print -r -- "$i"; done; }
_files() { print -r -- "<files>"; }
compdef() { :; }
${zshCompletion(program)}
words=(agwctl ${words.map((w) => `'${w}'`).join(" ")}); CURRENT=${words.length + 1}
_agwctl`;
  return execFileSync("zsh", ["-f", "-c", script], { encoding: "utf8" }).split("\n").filter(Boolean);
}

describe("bash completion", () => {
  it("completes groups, subcommands (with aliases) and each command's own flags", () => {
    expect(bash("")).toEqual(expect.arrayContaining(["login", "tokens", "agents", "rollouts", "release", "release-keys", "keys", "audit", "completion"]));
    expect(bash("ro")).toEqual(["rollouts"]);
    expect(bash("agents", "")).toEqual(expect.arrayContaining(["list", "ls", "get", "approve", "revoke", "unrevoke", "events"]));
    expect(bash("agents", "approve", "--")).toEqual(expect.arrayContaining(["--code", "--server", "--format", "--help"]));
    expect(bash("agents", "approve", "--")).not.toContain("--state");
    expect(bash("agents", "ls", "--st")).toEqual(["--state"]);
    expect(bash("--server", "http://x", "rollouts", "w")).toEqual(["watch"]);
  });

  it("completes --format choices and leaves other flag values alone", () => {
    expect(bash("agents", "list", "-o", "")).toEqual(["table", "json", "yaml"]);
    expect(bash("agents", "list", "--state", "")).toEqual([]);
  });
});

describe.skipIf(!hasZsh)("zsh completion", () => {
  it("parses, and offers the same words as bash", () => {
    expect(spawnSync("zsh", ["-n", "-c", zshCompletion(program)]).status).toBe(0);
    expect(zsh("")).toEqual(expect.arrayContaining(["login", "agents", "rollouts", "audit"]));
    expect(zsh("rollouts", "")).toEqual(
      expect.arrayContaining(["plan", "create", "start", "advance", "halt", "resume", "cancel", "retry", "get", "list", "watch"]),
    );
    expect(zsh("audit", "export", "--")).toEqual(expect.arrayContaining(["--cursor-file", "--after", "--format"]));
    expect(zsh("audit", "export", "--cursor-file", "")).toEqual(["<files>"]);
    expect(zsh("tokens", "list", "--format", "")).toEqual(["table", "json", "yaml"]);
  });
});
