import assert from "node:assert/strict";
import type { AgentStatus } from "../lib/agent.ts";
import { liveness, readiness, startServer } from "../lib/server.ts";

const fresh = (): AgentStatus => ({
  lastPollStartedAt: undefined,
  lastPollEndedAt: undefined,
  lastSnapshotOk: undefined,
  lastError: undefined,
  polling: false,
});
const LIMITS = { idleMs: 10_000, pollMs: 60_000 };

Deno.test("liveness is ok while the next poll starts in time, and says how long it has been otherwise", () => {
  const s = fresh();
  assert.equal(liveness(s, 5_000, 0, LIMITS).ok, true, "grace after start");
  assert.deepEqual(liveness(s, 20_000, 0, LIMITS), {
    ok: false,
    reason: "no poll has started for 20.0s (limit 10.0s)",
  });
  s.lastPollStartedAt = 14_000;
  s.lastPollEndedAt = 15_000;
  assert.equal(liveness(s, 20_000, 0, LIMITS).ok, true);
  assert.deepEqual(liveness(s, 26_000, 0, LIMITS), {
    ok: false,
    reason: "no poll started for 11.0s (limit 10.0s)",
  });
});

Deno.test("liveness stays ok through a long poll, and fails one that outlasts its limit", () => {
  const s = fresh();
  s.lastPollStartedAt = 100_000;
  s.lastPollEndedAt = 99_000;
  s.polling = true;
  assert.equal(
    liveness(s, 150_000, 0, LIMITS).ok,
    true,
    "50 s into a poll: many CLI deletes on a big table",
  );
  assert.deepEqual(liveness(s, 170_000, 0, LIMITS), {
    ok: false,
    reason: "a poll has been running for 70.0s (limit 60.0s)",
  });
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
    liveness: LIMITS,
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
