import { type FormEvent, useEffect, useRef, useState } from "react";
import type { Transport } from "@connectrpc/connect";
import { ApiKeyService } from "../../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { SystemKeyService } from "../../../gen/agentgateway/provider/v1/tenants_pb.js";
import { Reason, reasonOf } from "../../../client/reasons.js";
import type { Me } from "../lib/auth.js";
import { forgetKey, gatewayTransport, serviceClient, storeKey } from "../lib/session.js";
import { ErrorNote } from "../lib/ui.js";

/**
 * Who a key belongs to. The gateway says which kind it is: an operator key answers
 * ApiKeyService.WhoAmI, and a system key is refused there with SYSTEM_KEY_NOT_ALLOWED, so only
 * then is SystemKeyService.WhoAmI asked. No guessing from the prefix: a system key from
 * AGW_BOOTSTRAP_SYSTEM_KEY may be any string.
 */
async function whoIs(transport: Transport): Promise<Me> {
  try {
    const who = await serviceClient(ApiKeyService, transport).whoAmI({});
    return { kind: "operator", tenantId: who.tenantId, tenantName: who.tenantName, keyId: who.key?.id ?? "", keyName: who.key?.name ?? "", role: who.key?.role ?? 0, transport };
  } catch (err) {
    if (reasonOf(err) !== Reason.SYSTEM_KEY_NOT_ALLOWED) throw err;
  }
  const system = await serviceClient(SystemKeyService, transport).whoAmI({});
  return { kind: "system", keyId: system.key?.id ?? "", keyName: system.key?.name ?? "", fingerprint: system.key?.displayPrefix ?? "", transport };
}

/**
 * Asks for an operator API key or the provider's system key and checks it before keeping it
 * (sessionStorage, this tab only). A key already stored in this tab is checked again on load.
 */
export function SignIn({ initialKey, notice, onSignedIn }: { initialKey: string | undefined; notice: string | undefined; onSignedIn: (me: Me) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const tried = useRef(false);

  const signIn = async (secret: string) => {
    setBusy(true);
    setError(undefined);
    try {
      const me = await whoIs(gatewayTransport(secret));
      storeKey(secret);
      onSignedIn(me);
    } catch (err) {
      forgetKey();
      setError(err);
      setBusy(false);
    }
  };

  // biome-ignore lint/correctness/useExhaustiveDependencies: only on mount, for a key kept by this tab
  useEffect(() => {
    if (initialKey && !tried.current) {
      tried.current = true;
      void signIn(initialKey);
    }
  }, []);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const secret = key.trim();
    setKey("");
    if (secret) void signIn(secret);
  };

  return (
    <div className="signin">
      <form className="card signin-card" onSubmit={submit} autoComplete="off">
        <h1>AgentGateway</h1>
        <p className="muted">
          Sign in with an operator API key (agwk_…), or as the provider with the system key (agwp_…) to manage tenants. It is kept in this tab only and forgotten when you sign out or close the
          tab.
        </p>
        {notice && <p className="banner">{notice}</p>}
        <label className="field">
          <span>API key or system key</span>
          <input type="password" name="operator-key" value={key} onChange={(e) => setKey(e.target.value)} spellCheck={false} maxLength={512} />
        </label>
        <ErrorNote error={error} />
        <button type="submit" className="button primary" disabled={busy || key.trim() === ""}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
