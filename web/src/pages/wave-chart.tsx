import { type WaveStatus, WaveState } from "../../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { enumLabel } from "../lib/format.js";
import { Badge } from "../lib/ui.js";

const WAVE_TONE: Record<WaveState, string> = {
  [WaveState.UNSPECIFIED]: "grey",
  [WaveState.PENDING]: "grey",
  [WaveState.IN_PROGRESS]: "blue",
  [WaveState.SUCCEEDED]: "green",
  [WaveState.FAILED]: "red",
};

const SEGMENTS = [
  { key: "succeeded", label: "succeeded" },
  { key: "applying", label: "applying" },
  { key: "pending", label: "pending" },
  { key: "failed", label: "failed" },
] as const;

/**
 * Each wave as one stacked bar (succeeded, applying, pending, failed members), so an operator
 * sees at a glance where the train is and whether it is healthy.
 */
export function WaveBars({ waves, compact = false }: { waves: readonly WaveStatus[]; compact?: boolean }) {
  return (
    <div className={`waves ${compact ? "compact" : ""}`} data-testid="waves">
      {waves.map((w) => {
        const total = Math.max(1, w.memberIds.length);
        return (
          <div className="wave" key={w.index} data-testid={`wave-${w.index}`} data-state={enumLabel(WaveState, w.state)}>
            <div className="wave-head">
              <span className="wave-name">
                {w.index + 1}. {w.name}
              </span>
              <Badge tone={WAVE_TONE[w.state]}>{enumLabel(WaveState, w.state)}</Badge>
              <span className="muted wave-counts">
                {w.succeeded}/{w.memberIds.length} done{w.failed ? ` · ${w.failed} failed` : ""}
                {w.stragglerIds.length ? ` · ${w.stragglerIds.length} late` : ""}
              </span>
            </div>
            <div className="stack" role="img" aria-label={`${w.name}: ${w.succeeded} succeeded, ${w.applying} applying, ${w.pending} pending, ${w.failed} failed`}>
              {SEGMENTS.map((s) => {
                const n = w[s.key];
                return n > 0 ? <span key={s.key} className={`seg seg-${s.key}`} style={{ width: `${(100 * n) / total}%` }} title={`${n} ${s.label}`} /> : null;
              })}
            </div>
          </div>
        );
      })}
      {!compact && (
        <div className="legend">
          {SEGMENTS.map((s) => (
            <span key={s.key}>
              <span className={`swatch seg-${s.key}`} /> {s.label}
            </span>
          ))}
        </div>
      )}
    </div>
  );
}
