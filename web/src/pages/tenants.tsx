import { useMutation, useQuery } from "@connectrpc/connect-query";
import { type FormEvent, useState } from "react";
import { type Tenant, TenantService, TenantState } from "../../../gen/agentgateway/provider/v1/tenants_pb.js";
import { ago, dateTime } from "../lib/format.js";
import { useNow } from "../lib/live.js";
import { Badge, Card, ConfirmDialog, ErrorNote, ShownOnce } from "../lib/ui.js";

const PAGE_SIZE = 50;
const NAME_PATTERN = "[a-z0-9]([a-z0-9\\-]*[a-z0-9])?";

type Pending = { kind: "suspend" | "resume" | "delete"; tenant: Tenant } | undefined;

/**
 * The provider's tenants (system key only): create one — its first admin key shown once, with
 * a copy button — list, suspend with a reason, resume, and delete an empty one. The gateway's
 * refusal (a tenant that ever had agents) is shown as it answered.
 */
export function TenantsPage() {
  const now = useNow(10_000);
  const [tokens, setTokens] = useState<string[]>([""]);
  const pageToken = tokens[tokens.length - 1] ?? "";
  const list = useQuery(TenantService.method.listTenants, { pageSize: PAGE_SIZE, pageToken });
  const refetch = () => void list.refetch();
  const create = useMutation(TenantService.method.createTenant, { onSuccess: refetch });
  const suspend = useMutation(TenantService.method.suspendTenant, { onSuccess: refetch });
  const resume = useMutation(TenantService.method.resumeTenant, { onSuccess: refetch });
  const remove = useMutation(TenantService.method.deleteTenant, { onSuccess: refetch });
  const [form, setForm] = useState({ name: "", adminKeyName: "" });
  const [pending, setPending] = useState<Pending>(undefined);
  const action = pending?.kind === "suspend" ? suspend : pending?.kind === "resume" ? resume : remove;
  const close = () => {
    setPending(undefined);
    suspend.reset();
    resume.reset();
    remove.reset();
  };
  const confirm = (reason: string) => {
    if (!pending) return;
    const id = pending.tenant.id;
    const done = { onSuccess: () => setPending(undefined) };
    if (pending.kind === "suspend") suspend.mutate({ id, reason }, done);
    else if (pending.kind === "resume") resume.mutate({ id }, done);
    else remove.mutate({ id }, done);
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name: form.name.trim(), adminKeyName: form.adminKeyName.trim() }, { onSuccess: () => setForm({ name: "", adminKeyName: "" }) });
  };
  const next = list.data?.nextPageToken ?? "";

  return (
    <div className="grid">
      <Card title="New tenant" className="span-4">
        {create.data ? (
          <ShownOnce testId="tenant-secret" secret={create.data.adminKeySecret} doneLabel="Done — hide the key" onDone={() => create.reset()}>
            <strong>Copy the admin key now: it is shown only this once.</strong> Tenant <code>{create.data.tenant?.name}</code> exists; hand this key to its operators (they sign in here or with{" "}
            <code>agwctl login</code> and create their own keys). The gateway keeps only its hash.
          </ShownOnce>
        ) : (
          <form className="form-row" onSubmit={submit}>
            <label className="field wide">
              <span>Name</span>
              <input
                value={form.name}
                maxLength={63}
                required
                pattern={NAME_PATTERN}
                title="lowercase letters, digits and dashes"
                placeholder="acme-prod"
                name="tenant-name"
                onChange={(e) => setForm({ ...form, name: e.target.value })}
              />
            </label>
            <label className="field">
              <span>First admin key's name</span>
              <input value={form.adminKeyName} maxLength={128} placeholder="bootstrap admin" name="admin-key-name" onChange={(e) => setForm({ ...form, adminKeyName: e.target.value })} />
            </label>
            <div className="form-end">
              <button type="submit" className="button primary" disabled={create.isPending || form.name.trim() === ""}>
                Create tenant
              </button>
            </div>
            <ErrorNote error={create.error} />
          </form>
        )}
      </Card>
      <Card title="Tenants" className="span-4">
        <ErrorNote error={list.error} />
        <table className="table" data-testid="tenants-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>ID</th>
              <th>State</th>
              <th>Reason</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data?.tenants.map((t) => {
              const suspended = t.state === TenantState.SUSPENDED;
              return (
                <tr key={t.id} data-testid="tenant-row" data-name={t.name}>
                  <td>{t.name}</td>
                  <td className="mono small">{t.id}</td>
                  <td data-testid="tenant-state">
                    {suspended ? <Badge tone="red">suspended {ago(t.suspendedAt, now)}</Badge> : <Badge tone="green">active</Badge>}
                  </td>
                  <td className="small">{t.suspendReason}</td>
                  <td className="nowrap">{dateTime(t.createdAt)}</td>
                  <td className="nowrap">
                    {suspended ? (
                      <button type="button" className="button" onClick={() => setPending({ kind: "resume", tenant: t })}>
                        Resume
                      </button>
                    ) : (
                      <button type="button" className="button danger-outline" onClick={() => setPending({ kind: "suspend", tenant: t })}>
                        Suspend
                      </button>
                    )}{" "}
                    <button type="button" className="button danger-outline" onClick={() => setPending({ kind: "delete", tenant: t })}>
                      Delete
                    </button>
                  </td>
                </tr>
              );
            })}
            {list.data?.tenants.length === 0 && (
              <tr>
                <td colSpan={6} className="muted center">
                  No tenants.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        <nav className="pager">
          <button type="button" className="button" disabled={tokens.length <= 1} onClick={() => setTokens(tokens.slice(0, -1))}>
            ← Newer
          </button>
          <span>page {tokens.length}</span>
          <button type="button" className="button" disabled={next === ""} onClick={() => setTokens([...tokens, next])}>
            Older →
          </button>
        </nav>
        <p className="muted small">
          Only a tenant that never had an agent or a rollout can be deleted; suspend any other. A suspended tenant keeps everything, but its operators and agents are refused and its streams
          closed on every replica until it is resumed.
        </p>
      </Card>
      <ConfirmDialog
        open={pending !== undefined}
        title={pending?.kind === "suspend" ? "Suspend tenant" : pending?.kind === "resume" ? "Resume tenant" : "Delete tenant"}
        confirmLabel={pending?.kind === "suspend" ? "Suspend" : pending?.kind === "resume" ? "Resume" : "Delete"}
        danger={pending?.kind !== "resume"}
        {...(pending?.kind === "suspend" ? { textLabel: "Reason (recorded in the provider audit log and the tenant's own)", textRequired: true } : {})}
        error={action.error}
        busy={action.isPending}
        onConfirm={confirm}
        onClose={close}
      >
        {pending?.kind === "suspend" && (
          <p>
            Every operator and agent of <code>{pending.tenant.name}</code> is refused (TENANT_SUSPENDED) and its open streams end, on every replica. Nothing is deleted.
          </p>
        )}
        {pending?.kind === "resume" && (
          <p>
            <code>{pending.tenant.name}</code>'s keys work again at once; its agents reconnect on their own.
          </p>
        )}
        {pending?.kind === "delete" && (
          <p>
            <code>{pending.tenant.name}</code> goes with its operator keys, enrollment tokens, release keys and audit chain. The gateway refuses if it ever had an agent or a rollout.
          </p>
        )}
      </ConfirmDialog>
    </div>
  );
}
