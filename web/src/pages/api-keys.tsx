import { useMutation, useQuery } from "@connectrpc/connect-query";
import { type FormEvent, useState } from "react";
import { type ApiKey, ApiKeyService, Role } from "../../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { roleAllows, roleName } from "../lib/access.js";
import { useMe } from "../lib/auth.js";
import { ago, dateTime } from "../lib/format.js";
import { useNow } from "../lib/live.js";
import { Badge, Card, CheckToggle, RevokeDialog, ErrorNote, ShownOnce } from "../lib/ui.js";

const ROLE_TONE: Record<Role, string> = { [Role.UNSPECIFIED]: "grey", [Role.VIEWER]: "grey", [Role.EDITOR]: "blue", [Role.ADMIN]: "amber" };
const ROLES = [Role.VIEWER, Role.EDITOR, Role.ADMIN];

/** Operator API keys (admins only): create one — its secret shown once, with a copy button — list, revoke. */
export function ApiKeysPage() {
  const me = useMe();
  const now = useNow(10_000);
  const allowed = roleAllows(me.role, ApiKeyService.method.listApiKeys);
  const [includeRevoked, setIncludeRevoked] = useState(false);
  const list = useQuery(ApiKeyService.method.listApiKeys, { includeRevoked }, { enabled: allowed });
  const create = useMutation(ApiKeyService.method.createApiKey, { onSuccess: () => void list.refetch() });
  const revoke = useMutation(ApiKeyService.method.revokeApiKey, { onSuccess: () => void list.refetch() });
  const [revoking, setRevoking] = useState<ApiKey | undefined>(undefined);
  const [form, setForm] = useState({ name: "", role: Role.VIEWER });
  const canCreate = roleAllows(me.role, ApiKeyService.method.createApiKey);
  const canRevoke = roleAllows(me.role, ApiKeyService.method.revokeApiKey);

  if (!allowed) {
    return (
      <Card title="API keys">
        <p className="muted">Operator API keys are managed with a key of role admin.</p>
      </Card>
    );
  }
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name: form.name.trim(), role: form.role }, { onSuccess: () => setForm({ name: "", role: Role.VIEWER }) });
  };
  return (
    <div className="grid">
      {canCreate && (
        <Card title="New API key" className="span-4">
          {create.data ? (
            <ShownOnce testId="key-secret" secret={create.data.secret} doneLabel="Done — hide the key" onDone={() => create.reset()}>
              <strong>Copy the key now: it is shown only this once.</strong> The gateway keeps only its hash. Key <code>{create.data.key?.name}</code> has role{" "}
              <strong>{roleName(create.data.key?.role ?? Role.UNSPECIFIED)}</strong>; use it with <code>agwctl login</code> or sign in here.
            </ShownOnce>
          ) : (
            <form className="form-row" onSubmit={submit}>
              <label className="field wide">
                <span>Name</span>
                <input value={form.name} maxLength={128} required placeholder="ci-deployer" name="key-name" onChange={(e) => setForm({ ...form, name: e.target.value })} />
              </label>
              <label className="field">
                <span>Role</span>
                <select value={form.role} name="key-role" onChange={(e) => setForm({ ...form, role: Number(e.target.value) as Role })}>
                  {ROLES.map((r) => (
                    <option key={r} value={r}>
                      {roleName(r)}
                    </option>
                  ))}
                </select>
              </label>
              <div className="form-end">
                <button type="submit" className="button primary" disabled={create.isPending || form.name.trim() === ""}>
                  Create key
                </button>
              </div>
              <ErrorNote error={create.error} />
            </form>
          )}
        </Card>
      )}
      <Card
        title="API keys"
        className="span-4"
        actions={<CheckToggle checked={includeRevoked} onChange={setIncludeRevoked} label="show revoked" />}
      >
        <ErrorNote error={list.error} />
        <table className="table" data-testid="keys-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Role</th>
              <th>Fingerprint</th>
              <th>State</th>
              <th>Last used</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data?.keys.map((k) => (
              <tr key={k.id} data-testid="key-row" data-name={k.name}>
                <td title={k.id}>
                  {k.name}
                  {k.id === me.keyId && <span className="muted small"> (this key)</span>}
                </td>
                <td>
                  <Badge tone={ROLE_TONE[k.role]}>{roleName(k.role)}</Badge>
                </td>
                <td className="mono small">{k.displayPrefix}</td>
                <td>{k.revokedAt ? <Badge tone="red">revoked {ago(k.revokedAt, now)}</Badge> : <Badge tone="green">active</Badge>}</td>
                <td className="nowrap" title={dateTime(k.lastUsedAt)}>
                  {k.lastUsedAt ? ago(k.lastUsedAt, now) : "never"}
                </td>
                <td className="nowrap">{dateTime(k.createdAt)}</td>
                <td>
                  {canRevoke && !k.revokedAt && k.id !== me.keyId && (
                    <button type="button" className="button danger-outline" onClick={() => setRevoking(k)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {list.data?.keys.length === 0 && (
              <tr>
                <td colSpan={7} className="muted center">
                  No keys.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        <p className="muted small">A key cannot revoke itself, so the tenant is never locked out by accident.</p>
      </Card>
      <RevokeDialog target={revoking} title="Revoke API key" revoke={revoke} onClose={() => setRevoking(undefined)}>
        <p>
          Key <code>{revoking?.name}</code> ({revoking?.displayPrefix}, role {roleName(revoking?.role ?? Role.UNSPECIFIED)}) stops working at once: every request with it answers
          UNAUTHENTICATED, also consoles and scripts signed in with it.
        </p>
      </RevokeDialog>
    </div>
  );
}
