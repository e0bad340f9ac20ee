import assert from "node:assert/strict";
import type { AgentStatus } from "../lib/agent.ts";
import { liveness, readiness, startServer } from "../lib/server.ts";

const fresh = (): AgentStatus => ({
  lastPollStartedAt: undefined,
  lastSnapshotOk: undefined,
  lastError: undefined,
  polling: false,
});

Deno.test("liveness is ok while polls start within the window, and says how long it has been otherwise", () => {
  const s = fresh();
  assert.equal(liveness(s, 5_000, 0, 10_000).ok, true, "grace after start");
  assert.match(
    liveness(s, 20_000, 0, 10_000).reason,
    /no poll has started for 20\.0s \(limit 10\.0s\)/,
  );
  s.lastPollStartedAt = 15_000;
  assert.equal(liveness(s, 20_000, 0, 10_000).ok, true);
  const dead = liveness(s, 26_000, 0, 10_000);
  assert.equal(dead.ok, false);
  assert.match(dead.reason, /no poll started for 11\.0s/);
});

Deno.test("readiness waits for the first snapshot and follows the last one", () => {
  const s = fresh();
  assert.deepEqual(readiness(s), { ok: false, reason: "no snapshot has finished yet" });
  s.lastSnapshotOk = true;
  assert.deepEqual(readiness(s), { ok: true, reason: "ok" });
  s.lastSnapshotOk = false;
  s.lastError = "procfs snapshot failed: Permission denied\n(os error 13)";
  assert.deepEqual(readiness(s), {
    ok: false,
    reason: "procfs snapshot failed: Permission denied (os error 13)",
  });
});

Deno.test("startServer answers /healthz, /readyz and /metrics from the status, and 404 elsewhere", async () => {
  const status = fresh();
  let now = 0;
  const server = startServer({
    listen: { hostname: "127.0.0.1", port: 0 },
    status,
    metrics: () =>
      Promise.resolve({
        body: "conntrack_cleaner_candidates 3\n",
        contentType: "text/plain; version=0.0.4",
      }),
    livenessWindowMs: 10_000,
    clock: () => now,
  });
  const get = async (path: string, method = "GET") => {
    const r = await fetch(`http://127.0.0.1:${server.addr.port}${path}`, { method });
    return { status: r.status, body: await r.text(), type: r.headers.get("content-type") };
  };
  try {
    assert.notEqual(server.addr.port, 0, "port 0 picks a free port");
    assert.deepEqual(await get("/readyz"), {
      status: 503,
      body: "no snapshot has finished yet\n",
      type: "text/plain; charset=utf-8",
    });
    status.lastSnapshotOk = true;
    assert.equal((await get("/readyz")).status, 200);
    assert.equal((await get("/healthz")).status, 200);
    now = 60_000;
    const h = await get("/healthz");
    assert.equal(h.status, 503);
    assert.match(h.body, /no poll has started/);
    const m = await get("/metrics");
    assert.equal(m.status, 200);
    assert.equal(m.body, "conntrack_cleaner_candidates 3\n");
    assert.equal(m.type, "text/plain; version=0.0.4");
    assert.equal((await get("/nope")).status, 404);
    assert.equal((await get("/metrics", "POST")).status, 405);
  } finally {
    await server.shutdown();
  }
});
