import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { CliError, EXIT } from "./errors.js";
import type { InStream, Io } from "./output.js";
import { confirm, readSecret } from "./prompt.js";

function io(tty: boolean): Io & { stdin: PassThrough & InStream; err(): string; raw: boolean[] } {
  let err = "";
  const raw: boolean[] = [];
  const stdin = Object.assign(new PassThrough(), { isTTY: tty, setRawMode: (m: boolean) => raw.push(m) });
  return {
    stdin,
    stdout: { write: () => true },
    stderr: {
      write: (s: string) => {
        err += s;
        return true;
      },
      isTTY: tty,
    },
    env: {},
    err: () => err,
    raw,
  };
}

describe("reading the key", () => {
  it("takes the first line of piped stdin, trimmed", async () => {
    const p = io(false);
    p.stdin.end("  agwk_secret  \nsecond line\n");
    expect(await readSecret(p, "key: ")).toBe("agwk_secret");
    expect(p.err()).toBe("");
  });

  it("refuses empty or oversized input", async () => {
    const empty = io(false);
    empty.stdin.end("\n");
    await expect(readSecret(empty, "key: ")).rejects.toThrow(/no API key given/);
    const big = io(false);
    big.stdin.end("x".repeat(5000));
    await expect(readSecret(big, "key: ")).rejects.toThrow(/more than 4096 bytes/);
  });

  it("reads a typed key in raw mode without echoing it, with backspace, and restores the terminal", async () => {
    const t = io(true);
    const secret = readSecret(t, "API key: ");
    t.stdin.write("agwk_sec");
    t.stdin.write("x\u007fret\r");
    expect(await secret).toBe("agwk_secret");
    expect(t.err()).toBe("API key: \n");
    expect(t.raw).toEqual([true, false]);
  });

  it("stops on Ctrl-C with the interrupted exit code", async () => {
    const t = io(true);
    const secret = readSecret(t, "API key: ");
    t.stdin.write("agw\u0003");
    const err = await secret.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.INTERRUPTED);
    expect(t.raw).toEqual([true, false]);
  });
});

describe("confirmations", () => {
  it.each([
    ["y\n", true],
    ["YES\n", true],
    ["n\n", false],
    ["\n", false],
    ["yep\n", false],
  ])("answer %j is %s", async (answer, yes) => {
    const t = io(true);
    const asked = confirm(t, "Approve?");
    t.stdin.write(answer);
    expect(await asked).toBe(yes);
    expect(t.err()).toBe("Approve? [y/N] ");
  });

  it("is no when input ends", async () => {
    const t = io(true);
    const asked = confirm(t, "Approve?");
    t.stdin.end();
    expect(await asked).toBe(false);
  });
});
