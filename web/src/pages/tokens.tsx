import { useMutation, useQuery } from "@connectrpc/connect-query";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type FormEvent, useState } from "react";
import { type EnrollmentToken, EnrollmentTokenService, EnrollmentTokenState } from "../../../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { roleAllows } from "../lib/access.js";
import { useMe } from "../lib/auth.js";
import { dateTime, enumLabel, relative } from "../lib/format.js";
import { useNow } from "../lib/live.js";
import { Badge, Card, RevokeDialog, ErrorNote, ShownOnce } from "../lib/ui.js";

const STATE_TONE: Record<EnrollmentTokenState, string> = {
  [EnrollmentTokenState.UNSPECIFIED]: "grey",
  [EnrollmentTokenState.ACTIVE]: "green",
  [EnrollmentTokenState.USED]: "grey",
  [EnrollmentTokenState.EXPIRED]: "grey",
  [EnrollmentTokenState.REVOKED]: "red",
};

const TTLS: Array<[string, number]> = [
  ["15 minutes", 15 * 60_000],
  ["1 hour", 3_600_000],
  ["1 day", 86_400_000],
  ["7 days", 7 * 86_400_000],
  ["30 days", 30 * 86_400_000],
];

/** "site=ams, tier=edge" → { site: "ams", tier: "edge" }. */
function labelsFrom(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

/** Enrollment tokens: mint one (its secret shown once, with a copy button), list, revoke. */
export function TokensPage() {
  const me = useMe();
  const now = useNow(10_000);
  const [includeInactive, setIncludeInactive] = useState(false);
  const [cursor, setCursor] = useState<string[]>([""]);
  const pageToken = cursor[cursor.length - 1] ?? "";
  const list = useQuery(EnrollmentTokenService.method.listEnrollmentTokens, { includeInactive, pageSize: 20, pageToken });
  const create = useMutation(EnrollmentTokenService.method.createEnrollmentToken, { onSuccess: () => void list.refetch() });
  const revoke = useMutation(EnrollmentTokenService.method.revokeEnrollmentToken, { onSuccess: () => void list.refetch() });
  const [revoking, setRevoking] = useState<EnrollmentToken | undefined>(undefined);
  const canCreate = roleAllows(me.role, EnrollmentTokenService.method.createEnrollmentToken);
  const canRevoke = roleAllows(me.role, EnrollmentTokenService.method.revokeEnrollmentToken);

  const blank = { ttlMs: 3_600_000, maxUses: 1, requiresApproval: true, pinnedAgentName: "", labels: "", description: "" };
  const [form, setForm] = useState(blank);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({
      ttl: durationFromMs(form.ttlMs),
      maxUses: form.maxUses,
      requiresApproval: form.requiresApproval,
      pinnedAgentName: form.pinnedAgentName.trim(),
      labels: labelsFrom(form.labels),
      description: form.description.trim(),
    }, { onSuccess: () => setForm(blank) });
  };

  return (
    <div className="grid">
      {canCreate && (
        <Card title="New enrollment token" className="span-4">
          {create.data ? (
            <ShownOnce testId="token-secret" secret={create.data.secret} doneLabel="Done — hide the secret" onDone={() => create.reset()}>
              <strong>Copy the secret now: it is shown only this once.</strong> The gateway keeps only its hash. Hand it to the agent's installer (
              <code>agw-agent enroll --token …</code>).
            </ShownOnce>
          ) : (
            <form className="form-row" onSubmit={submit}>
              <label className="field">
                <span>Lifetime</span>
                <select value={form.ttlMs} onChange={(e) => setForm({ ...form, ttlMs: Number(e.target.value) })}>
                  {TTLS.map(([label, ms]) => (
                    <option key={ms} value={ms}>
                      {label}
                    </option>
                  ))}
                </select>
              </label>
              <label className="field narrow">
                <span>Uses</span>
                <input type="number" min={1} max={10000} value={form.maxUses} onChange={(e) => setForm({ ...form, maxUses: Number(e.target.value) })} />
              </label>
              <label className="field">
                <span>Pinned agent name</span>
                <input value={form.pinnedAgentName} maxLength={128} placeholder="(any)" onChange={(e) => setForm({ ...form, pinnedAgentName: e.target.value })} />
              </label>
              <label className="field">
                <span>Labels</span>
                <input value={form.labels} placeholder="site=ams, tier=edge" onChange={(e) => setForm({ ...form, labels: e.target.value })} />
              </label>
              <label className="field wide">
                <span>Description</span>
                <input value={form.description} maxLength={256} placeholder="rack 12 probes" onChange={(e) => setForm({ ...form, description: e.target.value })} name="description" />
              </label>
              <div className="form-end">
                <label className="check">
                  <input type="checkbox" checked={form.requiresApproval} onChange={(e) => setForm({ ...form, requiresApproval: e.target.checked })} /> requires approval
                </label>
                <button type="submit" className="button primary" disabled={create.isPending}>
                  Create token
                </button>
              </div>
              <ErrorNote error={create.error} />
            </form>
          )}
        </Card>
      )}
      <Card
        title="Enrollment tokens"
        className="span-4"
        actions={
          <label className="check">
            <input
              type="checkbox"
              checked={includeInactive}
              onChange={(e) => {
                setIncludeInactive(e.target.checked);
                setCursor([""]);
              }}
            />{" "}
            show used, expired and revoked
          </label>
        }
      >
        <ErrorNote error={list.error} />
        <table className="table" data-testid="tokens-table">
          <thead>
            <tr>
              <th>Fingerprint</th>
              <th>State</th>
              <th>Description</th>
              <th>Uses left</th>
              <th>Approval</th>
              <th>Labels</th>
              <th>Expires</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data?.tokens.map((t) => (
              <tr key={t.id} data-testid="token-row">
                <td className="mono small" title={t.id}>
                  {t.displayPrefix}
                </td>
                <td>
                  <Badge tone={STATE_TONE[t.state]}>{enumLabel(EnrollmentTokenState, t.state)}</Badge>
                </td>
                <td className="ellipsis" title={t.description}>
                  {t.description || <span className="muted">—</span>}
                  {t.pinnedAgentName && <div className="muted small">pinned: {t.pinnedAgentName}</div>}
                </td>
                <td className="num">
                  {t.usesLeft}/{t.maxUses}
                </td>
                <td>{t.requiresApproval ? "required" : "automatic"}</td>
                <td className="labels">
                  {Object.entries(t.labels).map(([k, v]) => (
                    <span className="label" key={k}>
                      {k}={v}
                    </span>
                  ))}
                </td>
                <td className="nowrap" title={dateTime(t.expiresAt)}>
                  {relative(t.expiresAt, now)}
                </td>
                <td className="nowrap">{dateTime(t.createdAt)}</td>
                <td>
                  {canRevoke && t.state === EnrollmentTokenState.ACTIVE && (
                    <button type="button" className="button danger-outline" onClick={() => setRevoking(t)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {list.data?.tokens.length === 0 && (
              <tr>
                <td colSpan={9} className="muted center">
                  No tokens.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        <nav className="pager">
          <button type="button" className="button" disabled={cursor.length <= 1} onClick={() => setCursor(cursor.slice(0, -1))}>
            ← Newer
          </button>
          <button type="button" className="button" disabled={!list.data?.nextPageToken} onClick={() => setCursor([...cursor, list.data?.nextPageToken ?? ""])}>
            Older →
          </button>
        </nav>
      </Card>
      <RevokeDialog target={revoking} title="Revoke enrollment token" revoke={revoke} onClose={() => setRevoking(undefined)}>
        <p>
          Token <code>{revoking?.displayPrefix}</code> can no longer be redeemed. Agents that already enrolled with it are not affected.
        </p>
      </RevokeDialog>
    </div>
  );
}
