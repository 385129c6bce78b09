import { useMutation } from "@connectrpc/connect-query";
import { useMemo, useState } from "react";
import { type Rollout, RolloutService, RolloutState, WaveState } from "../../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { roleAllows } from "../lib/access.js";
import { useMe } from "../lib/auth.js";
import { useFleet } from "../lib/fleet.js";
import { dateTime, duration, enumLabel, relative } from "../lib/format.js";
import { useLiveStream, useNow } from "../lib/live.js";
import { Link } from "../lib/router.js";
import { serviceClient } from "../lib/session.js";
import { Badge, Card, ConfirmDialog, ErrorNote, LiveIndicator } from "../lib/ui.js";
import { WaveBars } from "./wave-chart.js";

export const ROLLOUT_TONE: Record<RolloutState, string> = {
  [RolloutState.UNSPECIFIED]: "grey",
  [RolloutState.PLANNED]: "grey",
  [RolloutState.RUNNING]: "blue",
  [RolloutState.HALTED]: "red",
  [RolloutState.COMPLETED]: "green",
  [RolloutState.CANCELLED]: "grey",
};

type Verb = "start" | "advance" | "halt" | "resume" | "cancel" | "retry";

/** Which actions the rollout's state allows (the gateway decides; this only avoids offering the impossible). */
function possible(r: Rollout): Verb[] {
  const current = r.waves[r.currentWave];
  const hasNext = r.currentWave + 1 < r.waves.length;
  switch (r.state) {
    case RolloutState.PLANNED:
      return ["start", "cancel"];
    case RolloutState.RUNNING:
      return [...(hasNext && current?.state === WaveState.SUCCEEDED ? (["advance"] as Verb[]) : []), "halt", ...(r.failures.length > 0 ? (["retry"] as Verb[]) : []), "cancel"];
    case RolloutState.HALTED:
      return ["resume", ...(r.failures.length > 0 ? (["retry"] as Verb[]) : []), "cancel"];
    default:
      return [];
  }
}

const NEEDS_TEXT: Partial<Record<Verb, { label: string; required: boolean }>> = {
  halt: { label: "Why halt", required: true },
  resume: { label: "Why it is safe to go on (recorded)", required: true },
  cancel: { label: "Reason", required: false },
};

/** One rollout, live from WatchRollout: the waves as a chart, and the actions its state allows. */
export function RolloutDetailPage({ id }: { id: string }) {
  const me = useMe();
  const fleet = useFleet();
  const now = useNow();
  const [rollout, setRollout] = useState<Rollout | undefined>(undefined);
  const client = useMemo(() => serviceClient(RolloutService, me.transport), [me.transport]);
  const status = useLiveStream(`rollout-${id}`, (signal) => client.watchRollout({ id }, { signal }), (m) => m.rollout && setRollout(m.rollout), { endIsFinal: true });
  const [open, setOpen] = useState<Verb | undefined>(undefined);
  const m = {
    start: useMutation(RolloutService.method.startRollout),
    advance: useMutation(RolloutService.method.advanceRollout),
    halt: useMutation(RolloutService.method.haltRollout),
    resume: useMutation(RolloutService.method.resumeRollout),
    cancel: useMutation(RolloutService.method.cancelRollout),
    retry: useMutation(RolloutService.method.retryFailedMembers),
  };
  const methods = {
    start: RolloutService.method.startRollout,
    advance: RolloutService.method.advanceRollout,
    halt: RolloutService.method.haltRollout,
    resume: RolloutService.method.resumeRollout,
    cancel: RolloutService.method.cancelRollout,
    retry: RolloutService.method.retryFailedMembers,
  };
  // A successful action's answer is the new state; the watch confirms it a moment later.
  const done = {
    onSuccess: (res: { rollout?: Rollout }) => {
      if (res.rollout) setRollout(res.rollout);
      setOpen(undefined);
    },
  };
  const run = (verb: Verb, text = "") => {
    if (verb === "halt") m.halt.mutate({ id, reason: text }, done);
    else if (verb === "resume") m.resume.mutate({ id, note: text }, done);
    else if (verb === "cancel") m.cancel.mutate({ id, reason: text }, done);
    else m[verb].mutate({ id }, done);
  };
  const click = (verb: Verb) => {
    for (const x of Object.values(m)) x.reset();
    if (NEEDS_TEXT[verb] || verb === "start") setOpen(verb);
    else run(verb);
  };

  if (!rollout) {
    return (
      <Card title="Rollout">
        <LiveIndicator status={status} now={now} />
      </Card>
    );
  }
  const terminal = rollout.state === RolloutState.COMPLETED || rollout.state === RolloutState.CANCELLED;
  const verbs = possible(rollout).filter((v) => roleAllows(me.role, methods[v]));
  const anyError = Object.values(m).find((x) => x.error)?.error;
  return (
    <div className="grid">
      <Card
        className="span-4"
        title={
          <>
            <Link to="/rollouts">Rollouts</Link> / {rollout.targetVersion}{" "}
            <Badge tone={ROLLOUT_TONE[rollout.state]} testId="rollout-state">
              {enumLabel(RolloutState, rollout.state)}
            </Badge>
          </>
        }
        actions={
          <>
            <LiveIndicator status={status} now={now} />
            {verbs.map((v) => (
              <button key={v} type="button" data-action={v} className={`button ${v === "halt" || v === "cancel" ? "danger-outline" : "primary"}`} onClick={() => click(v)}>
                {v === "retry" ? "Retry failed" : v[0]?.toUpperCase() + v.slice(1)}
              </button>
            ))}
          </>
        }
      >
        {!open && <ErrorNote error={anyError} />}
        {rollout.state === RolloutState.HALTED && (
          <p className="banner" data-testid="halt-reason">
            Halted: {rollout.haltReason}
          </p>
        )}
        <WaveBars waves={rollout.waves} />
        <dl className="facts">
          <div>
            <dt>Current wave</dt>
            <dd>{rollout.currentWave < 0 ? "not started" : `${rollout.currentWave + 1} of ${rollout.waves.length}`}</dd>
          </div>
          <div>
            <dt>Verify deadline</dt>
            <dd>{terminal ? "—" : relative(rollout.waves[rollout.currentWave]?.verifyDeadline, now)}</dd>
          </div>
          <div>
            <dt>Auto-advance</dt>
            <dd>{rollout.autoAdvanceAfter && Number(rollout.autoAdvanceAfter.seconds) > 0 ? `after ${duration(rollout.autoAdvanceAfter)} healthy` : "by hand"}</dd>
          </div>
          <div>
            <dt>Created</dt>
            <dd>{dateTime(rollout.createdAt)}</dd>
          </div>
          <div>
            <dt>Updated</dt>
            <dd>{dateTime(rollout.updatedAt)}</dd>
          </div>
        </dl>
      </Card>
      {rollout.failures.length > 0 && (
        <Card title={`Failures (${rollout.failures.length})`} className="span-2">
          <table className="table">
            <tbody>
              {rollout.failures.map((f) => (
                <tr key={`${f.agentId}-${f.wave}`}>
                  <td>
                    <Link to={`/agents/${f.agentId}`}>{fleet.agents.get(f.agentId)?.name ?? f.agentId.slice(0, 8)}</Link>
                  </td>
                  <td>wave {f.wave + 1}</td>
                  <td>{f.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      )}
      {rollout.resumeNotes.length > 0 && (
        <Card title="Resume notes" className="span-2">
          <ul>
            {rollout.resumeNotes.map((n, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: notes are an append-only list
              <li key={i}>{n}</li>
            ))}
          </ul>
        </Card>
      )}
      {(Object.keys(NEEDS_TEXT) as Verb[]).concat(["start"]).map((v) => (
        <ConfirmDialog
          key={v}
          open={open === v}
          title={`${v[0]?.toUpperCase()}${v.slice(1)} rollout to ${rollout.targetVersion}`}
          confirmLabel={v[0]?.toUpperCase() + v.slice(1)}
          danger={v === "halt" || v === "cancel"}
          textLabel={NEEDS_TEXT[v]?.label}
          textRequired={NEEDS_TEXT[v]?.required}
          error={m[v].error}
          busy={m[v].isPending}
          onConfirm={(text) => run(v, text)}
          onClose={() => setOpen(undefined)}
        >
          {v === "start" && <p>The first wave ({rollout.waves[0]?.memberIds.length ?? 0} agents) is told to install the release now.</p>}
          {v === "cancel" && <p>The rollout stops for good. Agents already told keep going.</p>}
          {v === "halt" && <p>No further waves are released until someone resumes with a note.</p>}
        </ConfirmDialog>
      ))}
    </div>
  );
}
