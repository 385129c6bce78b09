import { fromBinary, fromJsonString, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useMemo, useState } from "react";
import { type RolloutSpecSchema, RolloutService, RolloutState } from "../../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { ReleaseManifestSchema, type SignedReleaseManifest, SignedReleaseManifestSchema } from "../../../gen/agentgateway/v1/release_pb.js";
import { roleAllows } from "../lib/access.js";
import { useMe } from "../lib/auth.js";
import { useFleet } from "../lib/fleet.js";
import { dateTime, enumLabel, hex } from "../lib/format.js";
import { Link, navigate } from "../lib/router.js";
import { Badge, Card, ErrorNote } from "../lib/ui.js";
import { ROLLOUT_TONE } from "./rollout-detail.js";

interface WaveRow {
  name: string;
  percent: number;
  budget: number;
  verifyMinutes: number;
}

const DEFAULT_WAVES: WaveRow[] = [
  { name: "canary", percent: 5, budget: 0, verifyMinutes: 15 },
  { name: "early", percent: 25, budget: 0, verifyMinutes: 15 },
  { name: "rest", percent: 100, budget: 0, verifyMinutes: 15 },
];

/** The signed manifest from `agwctl release sign` (protobuf JSON), with what it says, or why it does not parse. */
function parseManifest(text: string): { signed: SignedReleaseManifest; version: string; sha256: string } | { error: string } | undefined {
  if (!text.trim()) return undefined;
  try {
    const signed = fromJsonString(SignedReleaseManifestSchema, text);
    const manifest = fromBinary(ReleaseManifestSchema, signed.manifest);
    return { signed, version: manifest.version, sha256: hex(manifest.artifactSha256) };
  } catch (err) {
    return { error: `not a signed release manifest: ${(err as Error).message}` };
  }
}

/** Rollouts: the list, and a form that previews the wave plan before creating one. */
export function RolloutsPage() {
  const me = useMe();
  const list = useQuery(RolloutService.method.listRollouts, { pageSize: 20 });
  const canCreate = roleAllows(me.role, RolloutService.method.createRollout);
  return (
    <div className="grid">
      {canCreate && <NewRollout onCreated={(id) => navigate(`/rollouts/${id}`)} />}
      <Card title="Rollouts" className="span-4">
        <ErrorNote error={list.error} />
        <table className="table" data-testid="rollouts-table">
          <thead>
            <tr>
              <th>Version</th>
              <th>State</th>
              <th>Waves</th>
              <th>Created</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.rollouts.map((r) => (
              <tr key={r.id}>
                <td>
                  <Link to={`/rollouts/${r.id}`}>{r.targetVersion}</Link>
                </td>
                <td>
                  <Badge tone={ROLLOUT_TONE[r.state]}>{enumLabel(RolloutState, r.state)}</Badge>
                </td>
                <td>
                  {r.waves.filter((w) => w.succeeded === w.memberIds.length && w.memberIds.length > 0).length}/{r.waves.length} done
                </td>
                <td className="nowrap">{dateTime(r.createdAt)}</td>
                <td className="nowrap">{dateTime(r.updatedAt)}</td>
              </tr>
            ))}
            {list.data?.rollouts.length === 0 && (
              <tr>
                <td colSpan={5} className="muted center">
                  No rollouts yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </Card>
    </div>
  );
}

function NewRollout({ onCreated }: { onCreated: (id: string) => void }) {
  const fleet = useFleet();
  const [manifestText, setManifestText] = useState("");
  const [target, setTarget] = useState("");
  const [waves, setWaves] = useState<WaveRow[]>(DEFAULT_WAVES);
  const [autoAdvanceMinutes, setAutoAdvanceMinutes] = useState(0);
  const parsed = useMemo(() => parseManifest(manifestText), [manifestText]);
  const plan = useMutation(RolloutService.method.planRollout);
  const create = useMutation(RolloutService.method.createRollout, { onSuccess: (r) => r.rollout && onCreated(r.rollout.id) });

  const spec = (): MessageInitShape<typeof RolloutSpecSchema> | undefined => {
    if (!parsed || "error" in parsed) return undefined;
    const selector: Record<string, string> = {};
    for (const part of target.split(",")) {
      const eq = part.indexOf("=");
      if (eq > 0) selector[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    }
    return {
      manifest: parsed.signed,
      targetSelector: selector,
      waves: waves.map((w) => ({ name: w.name, cumulativePercent: w.percent, failureBudget: w.budget, verifyWindow: durationFromMs(w.verifyMinutes * 60_000) })),
      ...(autoAdvanceMinutes > 0 ? { autoAdvanceAfter: durationFromMs(autoAdvanceMinutes * 60_000) } : {}),
    };
  };
  const setWave = (i: number, patch: Partial<WaveRow>) => {
    setWaves(waves.map((w, j) => (j === i ? { ...w, ...patch } : w)));
    plan.reset();
  };
  const loadFile = async (file: File | undefined) => {
    if (file && file.size < 64 * 1024) setManifestText(await file.text());
  };

  return (
    <Card title="New rollout" className="span-4">
      <div className="rollout-form">
        <div>
          <label className="field">
            <span>Signed release manifest (output of agwctl release sign)</span>
            <textarea
              name="manifest"
              rows={6}
              className="mono small"
              value={manifestText}
              onChange={(e) => {
                setManifestText(e.target.value);
                plan.reset();
              }}
              placeholder='{"manifest": "…", "signature": "…", "releasePublicKey": "…"}'
            />
          </label>
          <input type="file" accept=".json,application/json" aria-label="manifest file" onChange={(e) => void loadFile(e.target.files?.[0])} />
          {parsed && "error" in parsed && <p className="error">{parsed.error}</p>}
          {parsed && !("error" in parsed) && (
            <p className="ok" data-testid="manifest-summary">
              Version <strong>{parsed.version}</strong>, artifact SHA-256 <span className="mono small">{parsed.sha256.slice(0, 16)}…</span>
            </p>
          )}
          <label className="field">
            <span>Target agents with labels (empty: every active agent)</span>
            <input value={target} onChange={(e) => setTarget(e.target.value)} placeholder="site=ams" name="target" />
          </label>
          <label className="field">
            <span>Auto-advance after a healthy wave (minutes; 0 = advance by hand)</span>
            <input type="number" min={0} max={1440} value={autoAdvanceMinutes} onChange={(e) => setAutoAdvanceMinutes(Number(e.target.value))} />
          </label>
        </div>
        <div>
          <table className="table compact-table fixed">
            <colgroup>
              <col />
              <col className="w-num" />
              <col className="w-num" />
              <col className="w-num" />
              <col className="w-remove" />
            </colgroup>
            <thead>
              <tr>
                <th>Wave</th>
                <th title="Cumulative share of the targeted agents">Up to %</th>
                <th title="Members that may fail before the rollout halts">Budget</th>
                <th title="Minutes members have to reach the version">Verify min</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {waves.map((w, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions in an ordered list
                <tr key={i}>
                  <td>
                    <input value={w.name} maxLength={64} onChange={(e) => setWave(i, { name: e.target.value })} aria-label={`wave ${i + 1} name`} />
                  </td>
                  <td>
                    <input type="number" min={1} max={100} value={w.percent} onChange={(e) => setWave(i, { percent: Number(e.target.value) })} aria-label={`wave ${i + 1} percent`} />
                  </td>
                  <td>
                    <input type="number" min={0} value={w.budget} onChange={(e) => setWave(i, { budget: Number(e.target.value) })} aria-label={`wave ${i + 1} budget`} />
                  </td>
                  <td>
                    <input type="number" min={1} value={w.verifyMinutes} onChange={(e) => setWave(i, { verifyMinutes: Number(e.target.value) })} aria-label={`wave ${i + 1} verify`} />
                  </td>
                  <td>
                    <button type="button" className="button" disabled={waves.length <= 1} onClick={() => setWaves(waves.filter((_, j) => j !== i))}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <button type="button" className="button" disabled={waves.length >= 10} onClick={() => setWaves([...waves, { name: `wave-${waves.length + 1}`, percent: 100, budget: 0, verifyMinutes: 15 }])}>
            Add wave
          </button>
        </div>
      </div>
      <div className="actions">
        <button type="button" className="button" disabled={!spec() || plan.isPending} onClick={() => plan.mutate({ spec: spec() })}>
          Preview plan
        </button>
        <button type="button" className="button primary" disabled={!spec() || create.isPending} onClick={() => create.mutate({ spec: spec() })}>
          Create rollout
        </button>
      </div>
      <ErrorNote error={plan.error ?? create.error} />
      {plan.data && (
        <div className="plan" data-testid="plan">
          <h3>Plan</h3>
          <ol>
            {plan.data.waves.map((w) => (
              <li key={w.index}>
                <strong>{w.name}</strong>: {w.memberIds.length} agent{w.memberIds.length === 1 ? "" : "s"}
                <span className="muted small">
                  {" "}
                  {w.memberIds
                    .slice(0, 8)
                    .map((id) => fleet.agents.get(id)?.name ?? id.slice(0, 8))
                    .join(", ")}
                  {w.memberIds.length > 8 ? ", …" : ""}
                </span>
              </li>
            ))}
          </ol>
          {plan.data.alreadyOnTarget.length > 0 && <p className="muted">{plan.data.alreadyOnTarget.length} targeted agents already run this version and are skipped.</p>}
        </div>
      )}
    </Card>
  );
}
