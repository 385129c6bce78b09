import { promises as fs } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { publicKeyFromPrivate } from "../../client/protocol/ed25519.js";
import { writeFileAtomic } from "./atomic-file.js";
import { FILES, newState, recordApplied, recordRevokedPeer, StateStore } from "./state.js";

let root: string;
let oldUmask: number;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "agw-state-test-"));
  // The most permissive umask: the modes must come from the code, not from the environment.
  oldUmask = process.umask(0);
});

afterEach(async () => {
  process.umask(oldUmask);
  await rm(root, { recursive: true, force: true });
});

const mode = async (path: string) => (await fs.stat(path)).mode & 0o777;

function sample() {
  return newState({
    server: "http://127.0.0.1:7070",
    agentId: "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    tenantId: "0b7f4c1e-3d2a-4f6b-9c8d-1e2f3a4b5c6d",
    name: "probe-01",
    labels: { region: "eu" },
    verificationCode: "BP7P-87E7",
    tls: { pins: [] },
    releaseKeys: [],
  });
}

describe("StateStore", () => {
  it("creates the directory 0700 and every file 0600, whatever the umask", async () => {
    const store = new StateStore(join(root, "nested", "state"));
    await store.init();
    expect(await mode(store.dir)).toBe(0o700);
    await store.createIdentity();
    await store.save(sample());
    await store.saveSession({ token: "agws_x", issuedAt: new Date().toISOString(), expiresAt: new Date().toISOString(), heartbeatIntervalMs: 1000 });
    await store.saveStatus({ pid: 1, startedAt: "", updatedAt: "", connected: false, agentVersion: "1" });
    for (const f of [FILES.identity, FILES.state, FILES.session, FILES.status]) expect(await mode(store.path(f)), f).toBe(0o600);
  });

  it("tightens an existing directory that is too open", async () => {
    const dir = join(root, "open");
    await fs.mkdir(dir, { mode: 0o755 });
    await fs.chmod(dir, 0o755);
    await new StateStore(dir).init();
    expect(await mode(dir)).toBe(0o700);
  });

  it("round-trips the state and leaves no temp files behind", async () => {
    const store = new StateStore(root);
    await store.init();
    const state = sample();
    recordApplied(state, 7n, "FAILED", "bad signature");
    await store.save(state);
    await store.save({ ...state, name: "probe-02" });
    expect((await store.load())?.name).toBe("probe-02");
    expect((await store.load())?.lastAppliedSequence).toBe("7");
    expect((await fs.readdir(root)).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  it("writes the identity key once and reads back the same key pair", async () => {
    const store = new StateStore(root);
    await store.init();
    const created = await store.createIdentity();
    const loaded = await store.loadIdentity();
    expect(loaded?.publicKey).toEqual(created.publicKey);
    expect(publicKeyFromPrivate(loaded?.privateKey ?? new Uint8Array(32))).toEqual(created.publicKey);
    await expect(store.createIdentity()).rejects.toThrow(/EEXIST/);
    expect((await store.loadIdentity())?.publicKey).toEqual(created.publicKey);
  });

  it("removes temp files a crash left behind, and never shows a half-written file", async () => {
    const store = new StateStore(root);
    await fs.writeFile(join(root, ".deadbeef.tmp"), "{half");
    await store.init();
    expect(await fs.readdir(root)).toEqual([]);
    // Concurrent atomic writes: every read sees one complete version.
    const writes = Array.from({ length: 20 }, (_, i) => writeFileAtomic(join(root, "x.json"), JSON.stringify({ i, pad: "x".repeat(10_000) })));
    const reads = Array.from({ length: 20 }, async () => {
      const text = await fs.readFile(join(root, "x.json"), "utf8").catch(() => undefined);
      if (text !== undefined) expect(() => JSON.parse(text)).not.toThrow();
    });
    await Promise.all([...writes, ...reads]);
  });

  it("clears the session (revocation) and tolerates its absence", async () => {
    const store = new StateStore(root);
    await store.init();
    await store.saveSession({ token: "agws_x", issuedAt: "", expiresAt: new Date().toISOString(), heartbeatIntervalMs: 1 });
    await store.clearSession();
    await store.clearSession();
    expect(await store.loadSession()).toBeUndefined();
  });
});

describe("bounded records", () => {
  it("keeps the last applied sequence monotonic and the ack list short", () => {
    const state = sample();
    for (let i = 1; i <= 100; i++) recordApplied(state, BigInt(i), "OK", "");
    recordApplied(state, 5n, "FAILED", "late");
    expect(state.lastAppliedSequence).toBe("100");
    expect(state.recentAcks.length).toBeLessThanOrEqual(64);
    expect(state.recentAcks.at(-1)).toEqual({ sequence: "5", status: "FAILED", reason: "late" });
  });

  it("keeps one entry per revoked peer", () => {
    const state = sample();
    recordRevokedPeer(state, { agentId: "a", publicKey: "00" });
    recordRevokedPeer(state, { agentId: "a", publicKey: "00" });
    recordRevokedPeer(state, { agentId: "b", publicKey: "01" });
    expect(state.revokedPeers.map((p) => p.agentId)).toEqual(["a", "b"]);
  });
});
