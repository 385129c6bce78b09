import { promises as fs } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { MAX_LINE_BYTES } from "./local-event.js";

/**
 * The unix socket of the local event intake: JSON lines in, one answer line per line out, in
 * line order, each written only once `handle` resolved (for events: once durably stored).
 */
export class EventSocket {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly path: string,
    /** Answers one line (without the newline). */
    private readonly handle: (line: string) => Promise<string>,
  ) {}

  /** Listens; refuses if another live process holds the socket. */
  async listen(): Promise<void> {
    const path = this.path;
    if (await socketIsLive(path)) {
      throw new Error(`another agent is already running with this state directory (its event socket ${path} answers)`);
    }
    await fs.rm(path, { force: true });
    // allowHalfOpen: a producer may write its lines, shut down its side, and still read the answers.
    const server = createServer({ allowHalfOpen: true }, (socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    await fs.chmod(path, 0o660);
    this.server = server;
  }

  /** Stops accepting connections (open ones may still get their answers). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Ends the open connections and removes the socket file. */
  async remove(): Promise<void> {
    for (const s of this.sockets) s.end();
    await fs.rm(this.path, { force: true });
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => {}); // a producer that hangs up early is not our problem
    let buffered = "";
    // Answers go out in line order even though persisting is asynchronous.
    let answers: Promise<void> = Promise.resolve();
    const reply = (result: Promise<string>) => {
      answers = answers.then(async () => {
        const text = await result;
        if (!socket.destroyed) socket.write(`${text}\n`);
      });
    };
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_LINE_BYTES && !buffered.includes("\n")) {
        socket.end(`${JSON.stringify({ ok: false, error: `line longer than ${MAX_LINE_BYTES} bytes` })}\n`);
        buffered = "";
        return;
      }
      let nl = buffered.indexOf("\n");
      while (nl !== -1) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) reply(this.handle(line));
        nl = buffered.indexOf("\n");
      }
    });
    socket.on("end", () => {
      const line = buffered.trim();
      buffered = "";
      if (line) reply(this.handle(line));
      void answers.then(() => socket.end());
    });
  }
}

async function socketIsLive(path: string): Promise<boolean> {
  try {
    await fs.stat(path);
  } catch {
    return false;
  }
  return await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    const timer = setTimeout(() => {
      probe.destroy();
      resolve(false);
    }, 1000);
    probe.once("connect", () => {
      clearTimeout(timer);
      probe.end();
      resolve(true);
    });
    probe.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Writes JSON lines to an agent's event socket and returns its answers (for scripts and tests). */
export async function sendLocalEvents(socketPath: string, events: unknown[], timeoutMs = 10_000): Promise<Array<{ ok: boolean; id?: string; error?: string }>> {
  return await new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffered = "";
    const answers: Array<{ ok: boolean; id?: string; error?: string }> = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf("\n");
      while (nl !== -1) {
        answers.push(JSON.parse(buffered.slice(0, nl)) as { ok: boolean; id?: string; error?: string });
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf("\n");
      }
      if (answers.length >= events.length) {
        clearTimeout(timer);
        socket.end();
        resolve(answers);
      }
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("connect", () => {
      socket.write(events.map((e) => `${JSON.stringify(e)}\n`).join(""));
    });
  });
}
