import { useMutation, useQuery } from "@connectrpc/connect-query";
import { type FormEvent, useState } from "react";
import { type ReleaseKey, ReleaseKeyService } from "../../../gen/agentgateway/admin/v1/release_keys_pb.js";
import { roleAllows } from "../lib/access.js";
import { useMe } from "../lib/auth.js";
import { ago, dateTime, hex } from "../lib/format.js";
import { useNow } from "../lib/live.js";
import { Badge, Card, CheckToggle, RevokeDialog, CopyButton, ErrorNote } from "../lib/ui.js";

/** 64 hex digits → 32 bytes, or undefined (spaces and a 0x prefix are tolerated). */
export function publicKeyFromHex(text: string): Uint8Array | undefined {
  const clean = text.trim().replace(/^0x/i, "").replace(/\s+/g, "");
  if (!/^[0-9a-fA-F]{64}$/.test(clean)) return undefined;
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
}

/** Release signing keys: register a public key (from `agwctl release keygen`), list, revoke. */
export function ReleaseKeysPage() {
  const me = useMe();
  const now = useNow(10_000);
  const [includeRevoked, setIncludeRevoked] = useState(false);
  const list = useQuery(ReleaseKeyService.method.listReleaseKeys, { includeRevoked });
  const register = useMutation(ReleaseKeyService.method.registerReleaseKey, { onSuccess: () => void list.refetch() });
  const revoke = useMutation(ReleaseKeyService.method.revokeReleaseKey, { onSuccess: () => void list.refetch() });
  const [revoking, setRevoking] = useState<ReleaseKey | undefined>(undefined);
  const [form, setForm] = useState({ name: "", publicKey: "" });
  const canRegister = roleAllows(me.role, ReleaseKeyService.method.registerReleaseKey);
  const canRevoke = roleAllows(me.role, ReleaseKeyService.method.revokeReleaseKey);
  const parsed = publicKeyFromHex(form.publicKey);
  const badKey = form.publicKey.trim() !== "" && !parsed;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!parsed) return;
    register.mutate({ name: form.name.trim(), publicKey: parsed }, { onSuccess: () => setForm({ name: "", publicKey: "" }) });
  };
  return (
    <div className="grid">
      {canRegister && (
        <Card title="Register a release key" className="span-4">
          <form className="form-row" onSubmit={submit}>
            <label className="field">
              <span>Name</span>
              <input value={form.name} maxLength={128} required placeholder="release-2026" name="release-key-name" onChange={(e) => setForm({ ...form, name: e.target.value })} />
            </label>
            <label className="field wide">
              <span>Public key (64 hex digits, from agwctl release keygen)</span>
              <input
                value={form.publicKey}
                className="mono"
                name="release-key-public"
                placeholder="3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
                onChange={(e) => setForm({ ...form, publicKey: e.target.value })}
                aria-invalid={badKey}
              />
            </label>
            <div className="form-end">
              <button type="submit" className="button primary" disabled={register.isPending || !parsed || form.name.trim() === ""}>
                Register
              </button>
            </div>
            {badKey && (
              <p className="error" role="alert">
                An ed25519 public key is 32 bytes: 64 hex digits.
              </p>
            )}
            <ErrorNote error={register.error} />
          </form>
          <p className="muted small">
            Only the public half comes here. The private key stays offline and signs manifests with <code>agwctl release sign</code>; agents pin the public key too.
          </p>
        </Card>
      )}
      <Card
        title="Release keys"
        className="span-4"
        actions={<CheckToggle checked={includeRevoked} onChange={setIncludeRevoked} label="show revoked" />}
      >
        <ErrorNote error={list.error} />
        <table className="table" data-testid="release-keys-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Public key</th>
              <th>State</th>
              <th>Registered</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data?.keys.map((k) => (
              <tr key={k.id} data-testid="release-key-row" data-name={k.name}>
                <td title={k.id}>{k.name}</td>
                <td className="mono small" title={hex(k.publicKey)}>
                  {hex(k.publicKey).slice(0, 16)}… <CopyButton text={hex(k.publicKey)} />
                </td>
                <td>{k.revokedAt ? <Badge tone="red">revoked {ago(k.revokedAt, now)}</Badge> : <Badge tone="green">active</Badge>}</td>
                <td className="nowrap">{dateTime(k.createdAt)}</td>
                <td>
                  {canRevoke && !k.revokedAt && (
                    <button type="button" className="button danger-outline" onClick={() => setRevoking(k)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {list.data?.keys.length === 0 && (
              <tr>
                <td colSpan={5} className="muted center">
                  No release keys: register one before creating a rollout.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </Card>
      <RevokeDialog target={revoking} title="Revoke release key" revoke={revoke} onClose={() => setRevoking(undefined)}>
        <p>
          Manifests signed with <code>{revoking?.name}</code> are no longer accepted for new rollouts (plan and create refuse them). Rollouts created before are not stopped: halt or cancel them if the key leaked.
        </p>
      </RevokeDialog>
    </div>
  );
}
