import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useRef, useState } from "react";

/** How a live stream is doing, for the banner and the status light. */
export type LiveStatus =
  | { kind: "connecting"; attempt: number }
  | { kind: "live" }
  | { kind: "disconnected"; retryAt: number; error: string }
  | { kind: "ended" }
  | { kind: "failed"; error: string };

/** Server-streaming call shape: yields messages until the server ends it or the signal aborts. */
export type OpenStream<M> = (signal: AbortSignal) => AsyncIterable<M>;

// Codes a retry cannot fix: the stream stops and says why.
const FATAL = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument, Code.NotFound]);

/** Backoff before attempt n (1-based): 0.5 s, 1 s, 2 s … capped at 15 s, with ±25 % jitter. */
export function backoffMs(attempt: number): number {
  const base = Math.min(15_000, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/**
 * Keeps a server stream open for as long as the component is mounted: each message goes to
 * `onMessage`; when the stream breaks (network, gateway restart or drain) it is reopened
 * after a growing, jittered delay, and the status says so meanwhile. `onFatal` hears of an
 * error a retry cannot fix (e.g. the key was revoked). `key` restarts the stream when it changes.
 */
export function useLiveStream<M>(
  key: string,
  open: OpenStream<M> | undefined,
  onMessage: (m: M) => void,
  options: { onFatal?: (err: ConnectError) => void; endIsFinal?: boolean } = {},
): LiveStatus {
  const [status, setStatus] = useState<LiveStatus>({ kind: "connecting", attempt: 1 });
  const handlers = useRef({ onMessage, options });
  handlers.current = { onMessage, options };
  // biome-ignore lint/correctness/useExhaustiveDependencies: `open` is recreated every render; `key` names the stream
  useEffect(() => {
    if (!open) return;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let attempt = 0;
    const run = async () => {
      attempt++;
      setStatus({ kind: "connecting", attempt });
      try {
        let first = true;
        for await (const message of open(abort.signal)) {
          if (first) {
            first = false;
            attempt = 0;
            setStatus({ kind: "live" });
          }
          handlers.current.onMessage(message);
        }
        if (abort.signal.aborted) return;
        if (handlers.current.options.endIsFinal) {
          setStatus({ kind: "ended" });
          return;
        }
        retry("the gateway ended the stream");
      } catch (err) {
        if (abort.signal.aborted) return;
        const error = ConnectError.from(err);
        if (FATAL.has(error.code)) {
          setStatus({ kind: "failed", error: error.rawMessage });
          handlers.current.options.onFatal?.(error);
          return;
        }
        retry(error.rawMessage || Code[error.code] || "connection lost");
      }
    };
    const retry = (error: string) => {
      const wait = backoffMs(Math.max(1, attempt));
      setStatus({ kind: "disconnected", retryAt: Date.now() + wait, error });
      timer = setTimeout(() => void run(), wait);
    };
    void run();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [key]);
  return status;
}

/** Re-renders every `ms` so relative times ("12 s ago") stay true. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
