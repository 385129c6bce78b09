import { type MouseEvent, type ReactNode, useEffect, useState } from "react";

/** Where the gateway serves the console; every route lives below it. */
export const BASE = "/admin";

const listeners = new Set<() => void>();

/** Goes to a console route ("/agents/…") without reloading the page. */
export function navigate(to: string): void {
  window.history.pushState(null, "", `${BASE}${to}`);
  for (const l of listeners) l();
}

const read = () => window.location.pathname.slice(BASE.length) || "/";

/** The current route below /admin, e.g. "/agents/1234"; "/" for the overview. */
export function usePath(): string {
  const [path, setPath] = useState(read);
  useEffect(() => {
    const update = () => setPath(read());
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return path;
}

/** An in-app link: a real <a href> (middle-click, copy link work), navigated without a reload. */
export function Link({ to, children, className, title }: { to: string; children: ReactNode; className?: string; title?: string }) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return (
    <a href={`${BASE}${to}`} onClick={onClick} className={className} title={title}>
      {children}
    </a>
  );
}

/** Matches "/agents/:id"-style patterns; returns the parameters or undefined. */
export function match(pattern: string, path: string): Record<string, string> | undefined {
  const p = pattern.split("/");
  const a = path.replace(/\/$/, "").split("/");
  if (p.length !== a.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const seg = p[i] ?? "";
    const val = a[i] ?? "";
    if (seg.startsWith(":")) params[seg.slice(1)] = decodeURIComponent(val);
    else if (seg !== val) return undefined;
  }
  return params;
}
