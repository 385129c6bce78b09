/**
 * Where memory per object goes, from two V8 heap snapshots of the same process (written by
 * bench/lib/memory-hook.ts when BENCH_HEAP_SNAPSHOT_DIR is set): self size grouped by node type
 * and constructor name, and the growth of each group from the first snapshot to the second,
 * divided by how many objects (streams, connections…) were added in between.
 */
import { readFileSync, rmSync } from "node:fs";

/** Self size and count of one group of heap nodes. */
export interface HeapGroup {
  group: string;
  count: number;
  bytes: number;
}

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size by "type · name" over every node of the snapshot file. */
export function groupHeapSnapshot(path: string): Map<string, HeapGroup> {
  const raw = JSON.parse(readFileSync(path, "utf8")) as RawSnapshot;
  const fields = raw.snapshot.meta.node_fields;
  const types = raw.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const groups = new Map<string, HeapGroup>();
  for (let i = 0; i < raw.nodes.length; i += width) {
    const type = types[raw.nodes[i + typeAt] ?? 0] ?? "?";
    // Strings and numbers are named by their value: group them by type only.
    const name = type === "object" || type === "closure" || type === "native" || type === "hidden" || type === "array" ? raw.strings[raw.nodes[i + nameAt] ?? 0] ?? "?" : "";
    const group = name ? `${type} · ${name.slice(0, 60)}` : type;
    const entry = groups.get(group) ?? { group, count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += raw.nodes[i + sizeAt] ?? 0;
    groups.set(group, entry);
  }
  return groups;
}

/** The groups that grew most from `before` to `after`, per added unit (bytes and count per unit). */
export function heapGrowth(beforePath: string, afterPath: string, units: number, top = 25): { total: number; groups: HeapGroup[] } {
  const before = groupHeapSnapshot(beforePath);
  const after = groupHeapSnapshot(afterPath);
  const grown: HeapGroup[] = [];
  let total = 0;
  for (const [group, a] of after) {
    const b = before.get(group);
    const bytes = (a.bytes - (b?.bytes ?? 0)) / units;
    const count = (a.count - (b?.count ?? 0)) / units;
    total += bytes;
    grown.push({ group, count, bytes });
  }
  grown.sort((x, y) => y.bytes - x.bytes);
  return { total, groups: grown.slice(0, top) };
}

/** Deletes snapshot files (they are large). */
export function removeSnapshots(...paths: Array<string | undefined>): void {
  for (const p of paths) if (p) rmSync(p, { force: true });
}
