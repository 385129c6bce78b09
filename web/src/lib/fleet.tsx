import type { ConnectError, Transport } from "@connectrpc/connect";
import { createContext, type ReactNode, useContext, useMemo, useRef, useState } from "react";
import { type Agent, AgentService, type WatchAgentsResponse } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import { livenessLabel, stateLabel } from "./format.js";
import { type LiveStatus, useLiveStream } from "./live.js";
import { serviceClient } from "./session.js";

/** A change seen on the live feed, for the overview's "recent changes". */
export interface FleetChange {
  at: number;
  agentId: string;
  name: string;
  text: string;
}

/** The tenant's agents as the WatchAgents stream keeps them, shared by every page. */
export interface Fleet {
  agents: ReadonlyMap<string, Agent>;
  /** True once the first snapshot has arrived completely. */
  ready: boolean;
  status: LiveStatus;
  changes: readonly FleetChange[];
}

const FleetContext = createContext<Fleet>({ agents: new Map(), ready: false, status: { kind: "connecting", attempt: 1 }, changes: [] });

const MAX_CHANGES = 50;

/** What changed between two versions of an agent, in words (undefined when nothing shown did). */
export function describeChange(before: Agent | undefined, after: Agent): string | undefined {
  if (!before) return `registered (${stateLabel(after.state)})`;
  const parts: string[] = [];
  if (before.state !== after.state) parts.push(`${stateLabel(before.state)} → ${stateLabel(after.state)}`);
  if (before.liveness !== after.liveness) parts.push(`${livenessLabel(before.liveness)} → ${livenessLabel(after.liveness)}`);
  if (before.agentVersion !== after.agentVersion && before.agentVersion) parts.push(`version ${before.agentVersion} → ${after.agentVersion}`);
  return parts.length > 0 ? parts.join(", ") : undefined;
}

/**
 * Opens one WatchAgents stream for the tab: the snapshot replaces the view (`reset`), later
 * messages patch it. While a (re)snapshot is arriving, the previous view stays on screen and
 * is swapped in once the snapshot is complete, so a reconnect does not blank the tables.
 */
export function FleetProvider({ transport, onFatal, children }: { transport: Transport; onFatal: (err: ConnectError) => void; children: ReactNode }) {
  const [agents, setAgents] = useState<ReadonlyMap<string, Agent>>(new Map());
  const [ready, setReady] = useState(false);
  const [changes, setChanges] = useState<readonly FleetChange[]>([]);
  const pending = useRef<Map<string, Agent> | undefined>(undefined);
  // The view as of the last message; messages are handled one after another.
  const current = useRef<ReadonlyMap<string, Agent>>(new Map());
  const client = useMemo(() => serviceClient(AgentService, transport), [transport]);

  const onMessage = (m: WatchAgentsResponse) => {
    if (m.reset) pending.current = new Map();
    const building = pending.current;
    if (building) {
      for (const a of m.agents) building.set(a.id, a);
      for (const id of m.removedIds) building.delete(id);
      if (m.snapshotComplete) {
        pending.current = undefined;
        current.current = building;
        setAgents(building);
        setReady(true);
      }
      return;
    }
    if (m.agents.length === 0 && m.removedIds.length === 0) return; // keepalive
    const prev = current.current;
    const next = new Map(prev);
    const seen: FleetChange[] = [];
    for (const a of m.agents) {
      const text = describeChange(prev.get(a.id), a);
      if (text) seen.push({ at: Date.now(), agentId: a.id, name: a.name, text });
      next.set(a.id, a);
    }
    for (const id of m.removedIds) next.delete(id);
    current.current = next;
    setAgents(next);
    if (seen.length > 0) setChanges((c) => [...seen.reverse(), ...c].slice(0, MAX_CHANGES));
  };

  const status = useLiveStream("watch-agents", (signal) => client.watchAgents({}, { signal }), onMessage, { onFatal });
  const value = useMemo(() => ({ agents, ready, status, changes }), [agents, ready, status, changes]);
  return <FleetContext.Provider value={value}>{children}</FleetContext.Provider>;
}

/** The live fleet. */
export function useFleet(): Fleet {
  return useContext(FleetContext);
}
