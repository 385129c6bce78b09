/**
 * `agwctl rollouts watch ID`: follows WatchRollout until the rollout completes (exit 0), halts
 * (exit 8) or is cancelled (exit 9). A stream the gateway ends early (restart, drain) is
 * reopened; each new stream starts with the current state, so nothing is missed.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import {
  type Rollout,
  RolloutService,
  RolloutState,
  type WatchRolloutResponse,
  WatchRolloutResponseSchema,
} from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { examples, handle } from "../command-table.js";
import { CliError, EXIT } from "../errors.js";
import { idArg } from "../flags.js";
import type { Io, Output } from "../output.js";
import { progressLine } from "./rollout-view.js";

/** Reconnects in a row without a single update before watch gives up. */
const MAX_RECONNECTS = 8;

/** Prints updates: a progress line rewritten in place on a TTY, one line per change otherwise. */
class Progress {
  private lastLine = "";
  private lastStage = "";
  private open = false;

  constructor(private readonly out: Output) {}

  show(res: WatchRolloutResponse & { rollout: Rollout }): void {
    const r = res.rollout;
    if (this.out.format !== "table" || this.out.quiet) {
      this.out.item(WatchRolloutResponseSchema, res);
      return;
    }
    const tty = this.out.tty;
    const line = progressLine(r, this.out.colour, tty);
    if (line === this.lastLine) return;
    const stage = `${r.state}/${r.currentWave}`;
    if (tty) {
      // A new wave or state keeps the previous line as history; counts update in place.
      const keep = this.open && stage !== this.lastStage;
      this.out.io.stdout.write(`${keep ? "\n" : "\r\x1b[2K"}${line}`);
      this.open = true;
    } else {
      this.out.line(line);
    }
    this.lastLine = line;
    this.lastStage = stage;
  }

  end(): void {
    if (this.open) this.out.io.stdout.write("\n");
    this.open = false;
  }
}

function isRetryable(err: unknown): boolean {
  const code = ConnectError.from(err).code;
  return code === Code.Unavailable || code === Code.DeadlineExceeded || code === Code.Aborted;
}

/** Registers `rollouts watch`. */
export function registerWatch(rollouts: Command, io: Io): void {
  const watch = rollouts
    .command("watch")
    .argument("<id>", "rollout ID")
    .description(
      "Follow a rollout live: counts per member state and a progress bar on a terminal, one JSON object per update with -o json. Exits 0 when it completes, 8 when it halts, 9 when it is cancelled.",
    );
  examples(watch, "agwctl rollouts watch 6f1c…", "agwctl rollouts watch 6f1c… -o json | jq -c '.rollout.waves[] | {name, succeeded}'");
  handle(watch, io, {
    rpcs: [RolloutService.method.watchRollout],
    notFound: "list rollouts with `agwctl rollouts list`",
    async run(run, [rawId]) {
      const id = idArg("rollout ID", rawId);
      const client = run.client(RolloutService);
      const progress = new Progress(run.out);
      let quiet = 0;
      try {
        for (;;) {
          try {
            for await (const res of client.watchRollout({ id }, { timeoutMs: 0 })) {
              const r = res.rollout;
              if (!r) continue;
              quiet = 0;
              progress.show({ ...res, rollout: r });
              if (r.state === RolloutState.COMPLETED) return;
              if (r.state === RolloutState.HALTED) {
                throw new CliError(
                  EXIT.ROLLOUT_HALTED,
                  `rollout ${id} halted: ${r.haltReason || "no reason given"}. See \`agwctl rollouts get ${id}\`; resume with \`agwctl rollouts resume ${id} --note TEXT\``,
                );
              }
              if (r.state === RolloutState.CANCELLED) throw new CliError(EXIT.ROLLOUT_CANCELLED, `rollout ${id} was cancelled`);
            }
          } catch (err) {
            if (err instanceof CliError || !isRetryable(err)) throw err;
          }
          // The stream ended (or broke) before a terminal state: reopen it, with backoff.
          if (++quiet > MAX_RECONNECTS)
            throw new CliError(EXIT.UNAVAILABLE, `lost the watch of rollout ${id} ${MAX_RECONNECTS} times in a row: check the gateway, then watch again`);
          await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** quiet, 10_000)));
        }
      } finally {
        progress.end();
      }
    },
  });
}
