import { Code, ConnectError } from "@connectrpc/connect";
import { TransportProvider } from "@connectrpc/connect-query";
import { QueryClient, QueryClientProvider, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useState } from "react";
import { ApiKeyService } from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AuditService } from "../../gen/agentgateway/admin/v1/audit_pb.js";
import { AgentState } from "../../gen/agentgateway/v1/common_pb.js";
import { roleAllows, roleName } from "./lib/access.js";
import { type Me, MeContext, type OperatorMe, type ProviderMe } from "./lib/auth.js";
import { FleetProvider, useFleet } from "./lib/fleet.js";
import { useNow } from "./lib/live.js";
import { Link, match, navigate, usePath } from "./lib/router.js";
import { forgetKey, storedKey } from "./lib/session.js";
import { Badge, LiveIndicator } from "./lib/ui.js";
import { AgentDetailPage } from "./pages/agent-detail.js";
import { ApiKeysPage } from "./pages/api-keys.js";
import { AgentsPage } from "./pages/agents.js";
import { ApprovalsPage } from "./pages/approvals.js";
import { AuditPage } from "./pages/audit.js";
import { OverviewPage } from "./pages/overview.js";
import { ProviderAuditPage } from "./pages/provider-audit.js";
import { ReleaseKeysPage } from "./pages/release-keys.js";
import { RolloutDetailPage } from "./pages/rollout-detail.js";
import { RolloutsPage } from "./pages/rollouts.js";
import { SignIn } from "./pages/sign-in.js";
import { TenantsPage } from "./pages/tenants.js";
import { TokensPage } from "./pages/tokens.js";

/**
 * The console: sign-in until a key is accepted, then the operator's shell with live data, or —
 * for the system key — the provider's shell, which has the provider pages and nothing else.
 */
export function App() {
  const [me, setMe] = useState<Me | undefined>(undefined);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const queryClient = useMemo(
    () =>
      new QueryClient({
        defaultOptions: {
          queries: { retry: (n, err) => n < 2 && (err as ConnectError).code !== Code.PermissionDenied, refetchOnWindowFocus: false, staleTime: 5_000 },
        },
      }),
    [],
  );
  const signOut = useCallback(
    (why?: string) => {
      forgetKey();
      queryClient.clear();
      setMe(undefined);
      setNotice(why);
      navigate("/");
    },
    [queryClient],
  );
  if (!me) {
    return (
      <SignIn
        initialKey={storedKey()}
        notice={notice}
        onSignedIn={(m) => {
          setNotice(undefined);
          setMe(m);
        }}
      />
    );
  }
  const onFatal = (err: ConnectError) => {
    if (err.code === Code.Unauthenticated) signOut("The gateway no longer accepts this key (revoked?). Sign in again.");
  };
  return (
    <MeContext.Provider value={me}>
      <TransportProvider transport={me.transport}>
        <QueryClientProvider client={queryClient}>
          {me.kind === "system" ? (
            <ProviderShell me={me} onSignOut={() => signOut()} onFatal={onFatal} />
          ) : (
            <FleetProvider transport={me.transport} onFatal={onFatal}>
              <Shell me={me} onSignOut={() => signOut()} />
            </FleetProvider>
          )}
        </QueryClientProvider>
      </TransportProvider>
    </MeContext.Provider>
  );
}

function NavLinks({ nav, path }: { nav: Array<{ to: string; label: string; extra?: number }>; path: string }) {
  const section = `/${path.split("/")[1] ?? ""}`;
  return (
    <nav className="nav">
      {nav.map((n) => (
        <Link key={n.to} to={n.to} className={section === n.to ? "active" : ""}>
          {n.label}
          {n.extra ? <span className="count">{n.extra}</span> : null}
        </Link>
      ))}
    </nav>
  );
}

/**
 * The provider's shell (system key): tenants and the provider audit chain, no tenant page at
 * all. It has no live stream to notice a key the gateway stopped accepting (rotated away), so
 * any query or action answered UNAUTHENTICATED signs out.
 */
function ProviderShell({ me, onSignOut, onFatal }: { me: ProviderMe; onSignOut: () => void; onFatal: (err: ConnectError) => void }) {
  const path = usePath();
  const queries = useQueryClient();
  useEffect(() => {
    const fatal = (error: unknown) => {
      if (error) onFatal(ConnectError.from(error));
    };
    const offQueries = queries.getQueryCache().subscribe((event) => event.type === "updated" && fatal(event.query.state.error));
    const offMutations = queries.getMutationCache().subscribe((event) => event.type === "updated" && fatal(event.mutation.state.error));
    return () => {
      offQueries();
      offMutations();
    };
  }, [queries, onFatal]);
  const nav = [
    { to: "/tenants", label: "Tenants" },
    { to: "/provider-audit", label: "Provider audit" },
  ];
  return (
    <div className="shell">
      <header className="topbar">
        <div className="brand">AgentGateway</div>
        <NavLinks nav={nav} path={path === "/" ? "/tenants" : path} />
        <div className="who">
          <Badge tone="amber" testId="provider">
            provider
          </Badge>
          <KeyAndSignOut title={`system key ${me.keyId} (${me.fingerprint})`} name={me.keyName} onSignOut={onSignOut} />
        </div>
      </header>
      <main className="page">
        {path === "/" || path === "" || match("/tenants", path) ? <TenantsPage /> : match("/provider-audit", path) ? <ProviderAuditPage /> : <NotFound path={path} home="/tenants" />}
      </main>
    </div>
  );
}

function KeyAndSignOut({ title, name, onSignOut }: { title: string; name: string; onSignOut: () => void }) {
  return (
    <>
      <span className="key" title={title}>
        {name}
      </span>
      <button type="button" className="button" onClick={onSignOut}>
        Sign out
      </button>
    </>
  );
}

function NotFound({ path, home }: { path: string; home: string }) {
  return (
    <div className="card">
      <h2>Not found</h2>
      <p>
        There is no page at <code>{path}</code>. <Link to={home}>Go back</Link>.
      </p>
    </div>
  );
}

function Shell({ me, onSignOut }: { me: OperatorMe; onSignOut: () => void }) {
  const path = usePath();
  const fleet = useFleet();
  const now = useNow();
  const pending = [...fleet.agents.values()].filter((a) => a.state === AgentState.PENDING_APPROVAL).length;
  const canAudit = roleAllows(me.role, AuditService.method.listAuditEvents);
  const canKeys = roleAllows(me.role, ApiKeyService.method.listApiKeys);
  const nav: Array<{ to: string; label: string; extra?: number }> = [
    { to: "/", label: "Overview" },
    { to: "/agents", label: "Agents" },
    { to: "/approvals", label: "Approvals", extra: pending },
    { to: "/tokens", label: "Tokens" },
    { to: "/rollouts", label: "Rollouts" },
    { to: "/release-keys", label: "Release keys" },
    ...(canKeys ? [{ to: "/keys", label: "API keys" }] : []),
    ...(canAudit ? [{ to: "/audit", label: "Audit" }] : []),
  ];
  return (
    <div className="shell">
      <header className="topbar">
        <div className="brand">AgentGateway</div>
        <NavLinks nav={nav} path={path} />
        <div className="who">
          <LiveIndicator status={fleet.status} now={now} />
          <span className="tenant" data-testid="tenant" title={me.tenantId}>
            {me.tenantName}
          </span>
          <Badge tone="blue" testId="role">
            {roleName(me.role)}
          </Badge>
          <KeyAndSignOut title={`key ${me.keyId}`} name={me.keyName} onSignOut={onSignOut} />
        </div>
      </header>
      {fleet.status.kind !== "live" && fleet.status.kind !== "connecting" && (
        <div className="banner" role="status" data-testid="disconnected">
          Live updates are disconnected: {fleet.status.kind === "disconnected" ? fleet.status.error : fleet.status.kind === "failed" ? fleet.status.error : "the stream ended"}. What you see may be out of date.
        </div>
      )}
      <main className="page">
        <Route path={path} />
      </main>
    </div>
  );
}

function Route({ path }: { path: string }) {
  const agent = match("/agents/:id", path);
  if (agent?.id) return <AgentDetailPage id={agent.id} />;
  const rollout = match("/rollouts/:id", path);
  if (rollout?.id) return <RolloutDetailPage id={rollout.id} />;
  if (match("/agents", path)) return <AgentsPage />;
  if (match("/approvals", path)) return <ApprovalsPage />;
  if (match("/tokens", path)) return <TokensPage />;
  if (match("/rollouts", path)) return <RolloutsPage />;
  if (match("/audit", path)) return <AuditPage />;
  if (match("/keys", path)) return <ApiKeysPage />;
  if (match("/release-keys", path)) return <ReleaseKeysPage />;
  if (path === "/" || path === "") return <OverviewPage />;
  // The provider pages (/tenants, /provider-audit) do not exist here: an operator never sees them.
  return <NotFound path={path} home="/" />;
}
