import { kubeReadiness } from "../../lib/kube/readiness.ts";
import assert from "node:assert/strict";
import type { AgentStatus } from "../../lib/agent/agent.ts";
import { cacheFor, liveness, readiness, startServer } from "../../lib/serve/server.ts";

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
    const post = await fetch(`http://127.0.0.1:${server.addr.port}/metrics`, { method: "POST" });
    await post.body?.cancel();
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  } finally {
    await server.shutdown();
  }
});

/** Sends raw bytes, returns everything the server sent until it closed (or `waitMs` passed). */
async function raw(port: number, request: string, waitMs = 2000): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    let out = "";
    const buf = new Uint8Array(65536);
    const deadline = setTimeout(() => conn.close(), waitMs);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        out += new TextDecoder().decode(buf.subarray(0, n));
      }
    } catch {
      /* closed by the deadline */
    } finally {
      clearTimeout(deadline);
    }
    return out;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

function serverFor(extra: Partial<Parameters<typeof startServer>[0]> = {}) {
  const errors: unknown[] = [];
  const server = startServer({
    listen: { hostname: "127.0.0.1", port: 0 },
    status: fresh(),
    metrics: () => Promise.resolve({ body: "m 1\n", contentType: "text/plain; version=0.0.4" }),
    liveness: LIMITS,
    onError: (e) => errors.push(e),
    ...extra,
  });
  return { server, errors };
}

Deno.test("startServer answers a malformed request or Host with 400, never 500, and reports no error", async () => {
  const { server, errors } = serverFor();
  try {
    const bad = [
      "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x:99999\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET nothing HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nbad header\r\n\r\n",
      "\x00\x01\x02 garbage\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    ];
    for (const req of bad) {
      const res = await raw(server.addr.port, req);
      assert.match(res, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(req));
      assert.match(res, /\r\nconnection: close\r\n/);
    }
    const ok = await raw(
      server.addr.port,
      "GET /metrics HTTP/1.1\r\nHost: x:10395\r\nConnection: close\r\n\r\n",
    );
    assert.match(ok, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nm 1\n$/);
    const head = await raw(server.addr.port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n[^]*content-length: 4\r\n[^]*\r\n\r\n$/);
    assert.deepEqual(errors, [], "nothing reported");
  } finally {
    await server.shutdown();
  }
});

Deno.test("startServer closes idle and half-sent connections after the idle timeout", async () => {
  const { server } = serverFor({ idleTimeoutMs: 300 });
  try {
    for (const req of ["", "GET /metrics HTTP/1.1\r\nHost: x\r\n"]) {
      const t0 = performance.now();
      const res = await raw(server.addr.port, req, 5000);
      const ms = performance.now() - t0;
      assert.equal(res, "", "closed without an answer");
      assert.ok(ms >= 250 && ms < 2000, `closed after ${Math.round(ms)} ms`);
    }
    // A keep-alive connection is closed once idle too.
    const t0 = performance.now();
    const res = await raw(server.addr.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 5000);
    assert.match(res, /^HTTP\/1\.1 200 OK/);
    assert.ok(performance.now() - t0 < 2000);
  } finally {
    await server.shutdown();
  }
});

Deno.test("startServer caps concurrent connections: the one past the cap closes the longest idle one", async () => {
  const { server } = serverFor({ maxConnections: 3, idleTimeoutMs: 5000 });
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
      await new Promise((r) => setTimeout(r, 30));
    }
    const res = await raw(server.addr.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(res, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(await held[0]!.read(new Uint8Array(8)), null, "the oldest was closed");
  } finally {
    for (const c of held) c.close();
    await server.shutdown();
  }
});

Deno.test("cacheFor renders at most once per max age, shares a rendering in progress, and drops a failed one", async () => {
  let now = 0;
  let renders = 0;
  let fail = false;
  const get = cacheFor(
    () => {
      renders++;
      return fail ? Promise.reject(new Error("x")) : Promise.resolve(renders);
    },
    1000,
    () => now,
  );
  assert.deepEqual(await Promise.all([get(), get(), get()]), [1, 1, 1]);
  now = 999;
  assert.equal(await get(), 1);
  now = 1000;
  assert.equal(await get(), 2);
  now = 2500;
  fail = true;
  await assert.rejects(get());
  fail = false;
  assert.equal(await get(), 4, "a failed rendering is not served again");
  assert.equal(renders, 4);
});

Deno.test("startServer serves /metrics from a rendering at most metricsMaxAgeMs old", async () => {
  let now = 0;
  let renders = 0;
  const { server } = serverFor({
    clock: () => now,
    metrics: () => Promise.resolve({ body: `r ${++renders}\n`, contentType: "text/plain" }),
  });
  try {
    const get = async () =>
      await (await fetch(`http://127.0.0.1:${server.addr.port}/metrics`)).text();
    assert.equal(await get(), "r 1\n");
    assert.equal(await get(), "r 1\n");
    now = 1000;
    assert.equal(await get(), "r 2\n");
  } finally {
    await server.shutdown();
  }
});

Deno.test("startServer keeps a connection open for the next request (HTTP/1.1, and HTTP/1.0 with keep-alive)", async () => {
  const { server } = serverFor({ idleTimeoutMs: 300 });
  try {
    for (
      const [req, n] of [["GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 3], [
        "GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        3,
      ], ["GET /healthz HTTP/1.0\r\n\r\n", 1]] as const
    ) {
      // Pipelined: every request on the one connection is answered, then it idles out.
      const res = await raw(server.addr.port, req.repeat(3), 3000);
      assert.equal(res.match(/HTTP\/1\.1 200 OK/g)?.length, n, res);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("/readyz answers 503 with the first extra check that is not ok (the Kubernetes view's)", async () => {
  let kube = {
    freshness: "unsynced" as "unsynced" | "live" | "stale" | "expired",
    lastError: "services: HTTP 403 Forbidden" as string | undefined,
    lastContactAgeMs: 400_000,
  };
  const status = { ...fresh(), lastSnapshotOk: true };
  const { server } = serverFor({ status, readyChecks: [() => kubeReadiness(kube)] });
  const ready = async () => {
    const r = await fetch(`http://127.0.0.1:${server.addr.port}/readyz`);
    return `${r.status} ${(await r.text()).trim()}`;
  };
  try {
    assert.equal(
      await ready(),
      "503 Kubernetes: no full list of Services and EndpointSlices yet (services: HTTP 403 Forbidden)",
    );
    kube = { ...kube, freshness: "stale", lastError: "services: connection refused" };
    assert.equal(await ready(), "200 ok", "a stale view is still used");
    kube = { ...kube, freshness: "expired" };
    assert.equal(
      await ready(),
      "503 Kubernetes: API unreachable for 400s; Services vouch for nothing (services: connection refused)",
    );
    kube = { ...kube, freshness: "live", lastError: undefined };
    assert.equal(await ready(), "200 ok");
    status.lastSnapshotOk = false;
    assert.match(
      await ready(),
      /^503 the last snapshot failed/,
      "the loop's own answer comes first",
    );
  } finally {
    await server.shutdown();
  }
});
