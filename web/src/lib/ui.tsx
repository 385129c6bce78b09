import { Code, ConnectError } from "@connectrpc/connect";
import { type FormEvent, type ReactNode, useEffect, useRef, useState } from "react";
import { Liveness } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentState } from "../../../gen/agentgateway/v1/common_pb.js";
import { livenessLabel, stateLabel } from "./format.js";
import type { LiveStatus } from "./live.js";

const STATE_TONE: Record<AgentState, string> = {
  [AgentState.UNSPECIFIED]: "grey",
  [AgentState.PENDING_APPROVAL]: "amber",
  [AgentState.ACTIVE]: "green",
  [AgentState.REJECTED]: "grey",
  [AgentState.REVOKED]: "red",
  [AgentState.RETIRED]: "grey",
};

const LIVENESS_TONE: Record<Liveness, string> = {
  [Liveness.UNSPECIFIED]: "grey",
  [Liveness.ONLINE]: "green",
  [Liveness.STALE]: "amber",
  [Liveness.OFFLINE]: "grey",
};

/** A coloured pill. */
export function Badge({ tone, children, testId }: { tone: string; children: ReactNode; testId?: string }) {
  return (
    <span className={`badge badge-${tone}`} data-testid={testId}>
      {children}
    </span>
  );
}

export const StateBadge = ({ state }: { state: AgentState }) => (
  <Badge tone={STATE_TONE[state]} testId="state">
    {stateLabel(state)}
  </Badge>
);

export const LivenessBadge = ({ liveness }: { liveness: Liveness }) => (
  <Badge tone={LIVENESS_TONE[liveness]} testId="liveness">
    <span className="dot" /> {livenessLabel(liveness)}
  </Badge>
);

/** A refusal or failure as the operator should read it: the gateway's message and its code. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const e = ConnectError.from(error);
  return (
    <p className="error" role="alert">
      <strong>{Code[e.code] ?? "Error"}:</strong> {e.rawMessage}
    </p>
  );
}

/** The live stream's state as a light in the header and, when not live, a banner. */
export function LiveIndicator({ status, now }: { status: LiveStatus; now: number }) {
  const text =
    status.kind === "live" ? "live"
    : status.kind === "connecting" ? (status.attempt > 1 ? `reconnecting (attempt ${status.attempt})` : "connecting")
    : status.kind === "disconnected" ? `disconnected — retrying in ${Math.max(0, Math.ceil((status.retryAt - now) / 1000))} s`
    : status.kind === "ended" ? "final"
    : `stopped: ${status.error}`;
  const tone = status.kind === "live" ? "green" : status.kind === "connecting" ? "amber" : status.kind === "ended" ? "grey" : "red";
  return (
    <span className={`live live-${tone}`} data-testid="live-status" data-state={status.kind} title={status.kind === "disconnected" ? status.error : undefined}>
      <span className="dot" /> {text}
    </span>
  );
}

/** Copies text to the clipboard, and says so. */
export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setCopied(false);
    }
  };
  return (
    <button type="button" className="button" onClick={() => void copy()}>
      {copied ? "Copied" : label}
    </button>
  );
}

/** A page section with a title and optional actions on the right. */
export function Card({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={`card ${className ?? ""}`}>
      {(title || actions) && (
        <header className="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div className="actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

/** Previous/next controls with where we are. */
export function Pager({ page, pages, onPage, total }: { page: number; pages: number; onPage: (p: number) => void; total?: number }) {
  return (
    <nav className="pager" aria-label="pages">
      <button type="button" className="button" disabled={page <= 0} onClick={() => onPage(page - 1)}>
        ← Previous
      </button>
      <span>
        page {page + 1} of {Math.max(1, pages)}
        {total !== undefined ? ` · ${total} in all` : ""}
      </span>
      <button type="button" className="button" disabled={page + 1 >= pages} onClick={() => onPage(page + 1)}>
        Next →
      </button>
    </nav>
  );
}

/**
 * A confirmation for a consequential action, as a modal <dialog>. With `textLabel` it asks for
 * a reason or note (required when `textRequired`), which the gateway records in the audit log.
 */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  textLabel?: string;
  textRequired?: boolean;
  error?: unknown;
  busy?: boolean;
  /** Keeps the confirm button disabled (e.g. until a code is typed). */
  disabled?: boolean;
  onConfirm: (text: string) => void;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [text, setText] = useState("");
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) {
      setText("");
      d.showModal();
    } else if (!props.open) {
      // A reason typed into a closed dialog must not linger in the page.
      if (d.open) d.close();
      setText("");
    }
  }, [props.open]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    props.onConfirm(text.trim());
  };
  const missing = props.textRequired === true && text.trim() === "";
  return (
    <dialog ref={ref} className="dialog" onClose={props.onClose} aria-label={props.title}>
      <form onSubmit={submit}>
        <h2>{props.title}</h2>
        {props.children}
        {props.textLabel && (
          <label className="field">
            <span>
              {props.textLabel}
              {props.textRequired ? " (required)" : " (optional)"}
            </span>
            <textarea value={text} maxLength={1024} rows={3} onChange={(e) => setText(e.target.value)} name="reason" />
          </label>
        )}
        <ErrorNote error={props.error} />
        <div className="dialog-actions">
          <button type="button" className="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className={`button ${props.danger ? "danger" : "primary"}`} disabled={missing || props.busy || props.disabled}>
            {props.busy ? "Working…" : props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** The mutation a RevokeDialog runs: a connect-query mutation of a `Revoke…({ id })` RPC. */
interface RevokeMutation {
  mutate(input: { id: string }, options: { onSuccess: () => void }): void;
  reset(): void;
  error: unknown;
  isPending: boolean;
}

/**
 * Confirms revoking `target` (a token, an API key, a release key): open while there is one,
 * runs `revoke` with its id, and calls `onClose` when revoked or cancelled (the mutation's
 * error is cleared on cancel).
 */
export function RevokeDialog<T extends { id: string }>(props: { target: T | undefined; title: string; revoke: RevokeMutation; onClose: () => void; children?: ReactNode }) {
  const { target, revoke, onClose } = props;
  return (
    <ConfirmDialog
      open={target !== undefined}
      title={props.title}
      confirmLabel="Revoke"
      danger
      error={revoke.error}
      busy={revoke.isPending}
      onConfirm={() => target && revoke.mutate({ id: target.id }, { onSuccess: onClose })}
      onClose={() => {
        onClose();
        revoke.reset();
      }}
    >
      {props.children}
    </ConfirmDialog>
  );
}

/** A labelled checkbox for a card's header (e.g. "show revoked" on the key lists). */
export function CheckToggle({ checked, onChange, label }: { checked: boolean; onChange: (checked: boolean) => void; label: string }) {
  return (
    <label className="check">
      <input type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} /> {label}
    </label>
  );
}

/**
 * A secret the gateway returns once (a token, an API key): what it is, the value with a copy
 * button, and a button that forgets it (the caller resets the mutation that holds it).
 */
export function ShownOnce({ testId, secret, children, doneLabel, onDone }: { testId: string; secret: string; children: ReactNode; doneLabel: string; onDone: () => void }) {
  return (
    <div className="secret" data-testid={`${testId}-box`}>
      <p>{children}</p>
      <div className="secret-row">
        <code className="mono secret-value" data-testid={testId}>
          {secret}
        </code>
        <CopyButton text={secret} />
      </div>
      <button type="button" className="button" onClick={onDone}>
        {doneLabel}
      </button>
    </div>
  );
}
