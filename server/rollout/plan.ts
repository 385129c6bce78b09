/** One wave as the operator specified it (defaults filled in). */
export interface WaveSpecInput {
  name: string;
  cumulativePercent: number;
  labelSelector: Record<string, string>;
  failureBudget: number;
  verifyWindowMs: number;
}

/** An agent considered for a rollout. */
export interface Candidate {
  id: string;
  labels: Record<string, string>;
  agentVersion: string;
}

/** The planned waves and who is in each. */
export interface WavePlan {
  waves: Array<WaveSpecInput & { members: string[] }>;
  alreadyOnTarget: string[];
}

/** The default train: canary ≈5 %, early ≈25 % cumulative (≈20 % of the fleet), then the rest. */
export const DEFAULT_WAVES: WaveSpecInput[] = [
  { name: "canary", cumulativePercent: 5, labelSelector: {}, failureBudget: 0, verifyWindowMs: 15 * 60_000 },
  { name: "early", cumulativePercent: 25, labelSelector: {}, failureBudget: 0, verifyWindowMs: 15 * 60_000 },
  { name: "rest", cumulativePercent: 100, labelSelector: {}, failureBudget: 0, verifyWindowMs: 15 * 60_000 },
];

/** FNV-1a (32-bit) of the agent id: stable across processes and releases, so waves are reproducible. */
export function stableBucket(agentId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < agentId.length; i++) {
    hash ^= agentId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % 100;
}

/**
 * Assigns each candidate to exactly one wave, fixed at plan time. Agents already on the target
 * are skipped. Waves are filled in order: a label wave takes the unassigned agents carrying its
 * labels; a percentage wave takes the unassigned agents whose stable bucket is below its
 * cumulative percentage. Whatever is left joins the last wave, so nobody is silently skipped.
 */
export function planWaves(candidates: Candidate[], specs: WaveSpecInput[], targetVersion: string): WavePlan {
  const alreadyOnTarget = candidates.filter((c) => c.agentVersion === targetVersion).map((c) => c.id);
  const pending = candidates.filter((c) => c.agentVersion !== targetVersion).sort((a, b) => (a.id < b.id ? -1 : 1));
  const assigned = new Set<string>();
  const waves = specs.map((spec) => {
    const hasLabels = Object.keys(spec.labelSelector).length > 0;
    const members = pending
      .filter((c) => !assigned.has(c.id))
      .filter((c) =>
        hasLabels
          ? Object.entries(spec.labelSelector).every(([k, v]) => c.labels[k] === v)
          : stableBucket(c.id) < spec.cumulativePercent,
      )
      .map((c) => c.id);
    for (const id of members) assigned.add(id);
    return { ...spec, members };
  });
  const last = waves.at(-1);
  if (last) for (const c of pending) if (!assigned.has(c.id)) last.members.push(c.id);
  return { waves, alreadyOnTarget };
}
