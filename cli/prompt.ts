/**
 * Reading secrets and confirmations. A secret comes from a pipe (`… | agwctl login`) or a
 * prompt that does not echo; it is never written anywhere but the config file.
 */
import { createInterface } from "node:readline";
import { CliError, EXIT, usage } from "./errors.js";
import type { Io } from "./output.js";

/** Longer input is not a key; the bound keeps a stray `cat bigfile |` from filling memory. */
const MAX_SECRET_BYTES = 4096;

/** Whether prompts can be shown: stdin and stderr are terminals. */
export function interactive(io: Io): boolean {
  return io.stdin.isTTY === true && io.stderr.isTTY === true;
}

/** Reads a secret: the first line of piped stdin, or typed at a prompt without echo. */
export async function readSecret(io: Io, prompt: string): Promise<string> {
  const secret = io.stdin.isTTY ? await readHidden(io, prompt) : await readPiped(io);
  if (!secret) throw usage("no API key given: pipe it on stdin (`agwctl login --server URL < key-file`) or type it at the prompt");
  return secret;
}

async function readPiped(io: Io): Promise<string> {
  let data = "";
  for await (const chunk of io.stdin) {
    data += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    if (data.length > MAX_SECRET_BYTES) throw usage(`stdin holds more than ${MAX_SECRET_BYTES} bytes; expected one API key`);
    if (data.includes("\n")) break;
  }
  return (data.split("\n")[0] ?? "").trim();
}

function readHidden(io: Io, prompt: string): Promise<string> {
  const stdin = io.stdin;
  // Echo goes off before the prompt shows: a key pasted the instant the prompt appears must
  // not be echoed by the terminal before raw mode takes effect.
  stdin.setRawMode?.(true);
  io.stderr.write(prompt);
  stdin.resume();
  return new Promise<string>((resolve, reject) => {
    let typed = "";
    const finish = (error?: Error) => {
      stdin.off("data", onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr.write("\n");
      if (error) reject(error);
      else resolve(typed.trim());
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of typeof chunk === "string" ? chunk : chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return finish();
        if (ch === "\u0003") return finish(new CliError(EXIT.INTERRUPTED, "interrupted"));
        if (ch === "\u0004" && !typed) return finish();
        if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
        else if (ch >= " ") typed += ch;
        if (typed.length > MAX_SECRET_BYTES) return finish(usage("input too long for an API key"));
      }
    };
    stdin.on("data", onData);
  });
}

/** Asks a yes/no question on the terminal; true only for "y" or "yes". */
export async function confirm(io: Io, question: string): Promise<boolean> {
  io.stderr.write(`${question} [y/N] `);
  const rl = createInterface({ input: io.stdin, terminal: false });
  try {
    const answer = await new Promise<string>((resolve) => {
      rl.once("line", resolve);
      rl.once("close", () => resolve(""));
    });
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}
