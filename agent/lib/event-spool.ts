import { createHash } from "node:crypto";
import { promises as fs, type Stats } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { ensurePrivateDir } from "./atomic-file.js";
import type { LocalEventAnswer } from "./local-event.js";

/** Accepts one line; `fallbackId` names an event that has no id of its own. */
export type AcceptLine = (line: string, fallbackId: () => string) => Promise<LocalEventAnswer>;

/**
 * The spool directory of the local event intake: files of JSON lines (`*.jsonl`) dropped in by
 * producers, ingested oldest name first every `intervalMs`, then deleted.
 */
export class EventSpool {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly dir: string,
    private readonly accept: AcceptLine,
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}

  /** Creates the directory (0700) and starts scanning it. */
  async start(): Promise<void> {
    await ensurePrivateDir(this.dir);
    const tick = () => {
      this.running = this.scan()
        .catch((err) => this.logger.warn({ err }, "spool scan failed"))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    tick();
  }

  /** Stops scanning; resolves once a scan in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /**
   * Ingests spool files, then deletes them. Events without an id get one derived from the file
   * and line, so a crash between "stored" and "deleted" resends the same ids (duplicates the
   * gateway drops), not new events.
   */
  private async scan(): Promise<void> {
    const names = (await fs.readdir(this.dir)).filter((n) => !n.startsWith(".") && n.endsWith(".jsonl")).sort();
    for (const name of names) {
      if (this.stopped) return;
      const path = join(this.dir, name);
      let text: string;
      let st: Stats;
      try {
        st = await fs.stat(path);
        text = await fs.readFile(path, "utf8");
      } catch {
        continue;
      }
      const results = text.split("\n").map((raw, i) => {
        const line = raw.trim();
        if (!line) return Promise.resolve(undefined);
        const derived = () => createHash("sha256").update(`${name}\0${st.ino}\0${st.mtimeMs}\0${i}\0${line}`).digest("hex").slice(0, 32);
        return this.accept(line, derived).then((answer) => ({ line: i + 1, answer }));
      });
      let failed = false;
      for (const a of await Promise.all(results)) {
        if (!a || a.answer.ok) continue;
        if (a.answer.retry) failed = true;
        else this.logger.warn({ file: name, line: a.line, error: a.answer.error }, "spool line rejected");
      }
      // Keep the file if storing failed, so the next scan retries it (same derived ids).
      if (!failed) await fs.rm(path, { force: true });
    }
  }
}
