import assert from "node:assert/strict";
import { ApiError, FetchKubeApi, lines, parseEvent, type WatchEvent } from "../../lib/kube/api.ts";
import { FakeKubeApi } from "../../testbed/fake_kube_api.ts";
import { service } from "../../testbed/kube_objects.ts";
import { makeTls } from "../support/kube_tls.ts";

const svc = (name: string) =>
  service("web", name, { clusterIPs: ["10.96.0.10"], ports: [{ port: 80 }] });

/** Reads events from a watch until `n` arrived. */
async function take(events: AsyncIterable<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for await (const e of events) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

Deno.test("list pages through continue tokens, each page with the list's resourceVersion", async () => {
  const fake = new FakeKubeApi();
  try {
    for (const n of ["a", "b", "c"]) fake.set("services", svc(n));
    const api = new FetchKubeApi({ server: fake.url, token: "t0k", origin: "test" });
    const names: string[] = [];
    const onItem = (o: unknown) => names.push((o as { metadata: { name: string } }).metadata.name);
    const p1 = await api.list("/api/v1/services", { limit: 2 }, AbortSignal.timeout(5000), onItem);
    assert.equal(p1.count, 2);
    assert.deepEqual(names, ["a", "b"]);
    assert.equal(p1.resourceVersion, fake.resourceVersion);
    assert.ok(p1.continue);
    const p2 = await api.list(
      "/api/v1/services",
      { limit: 2, continue: p1.continue },
      AbortSignal.timeout(5000),
      onItem,
    );
    assert.deepEqual(names, ["a", "b", "c"]);
    assert.equal(p2.continue, undefined);
    assert.equal(fake.requests[0]!.authorization, "Bearer t0k");
    assert.equal(fake.requests[0]!.query.limit, "2");
  } finally {
    await fake.close();
  }
});

Deno.test("a watch asks for bookmarks from the resourceVersion and yields events in order", async () => {
  const fake = new FakeKubeApi();
  try {
    fake.set("services", svc("a"));
    const rv = fake.resourceVersion;
    const api = new FetchKubeApi({ server: fake.url, origin: "test" });
    const stop = new AbortController();
    const events = await api.watch("/api/v1/services", {
      resourceVersion: rv,
      timeoutSeconds: 60,
      idleMs: 10_000,
    }, stop.signal);
    fake.set("services", svc("b"));
    fake.delete("services", "web", "a");
    fake.bookmark("services");
    const got = await take(events, 3);
    stop.abort();
    assert.deepEqual(got.map((e) => e.type), ["ADDED", "DELETED", "BOOKMARK"]);
    const q = fake.requests.at(-1)!.query;
    assert.equal(q.allowWatchBookmarks, "true");
    assert.equal(q.resourceVersion, rv);
  } finally {
    await fake.close();
  }
});

Deno.test("an expired resourceVersion arrives as an ERROR event with code 410 (ApiError.gone)", async () => {
  const fake = new FakeKubeApi();
  try {
    fake.set("services", svc("a"));
    const old = fake.resourceVersion;
    fake.set("services", svc("b"));
    fake.compact("services");
    const api = new FetchKubeApi({ server: fake.url, origin: "test" });
    const events = await api.watch("/api/v1/services", {
      resourceVersion: old,
      timeoutSeconds: 60,
      idleMs: 10_000,
    }, AbortSignal.timeout(5000));
    const [e] = await take(events, 1);
    assert.equal(e?.type, "ERROR");
    assert.ok(e?.type === "ERROR" && new ApiError(e.code, e.reason, e.message).gone);
  } finally {
    await fake.close();
  }
});

Deno.test("an error status becomes an ApiError with code and reason; the token file is read at each request", async () => {
  const fake = new FakeKubeApi({ token: "second" });
  try {
    let token = "first";
    const api = new FetchKubeApi(
      { server: fake.url, tokenFile: "/token", origin: "test" },
      {
        readTextFile: (
          p,
        ) => (p === "/token" ? Promise.resolve(token + "\n") : Promise.reject(new Error(p))),
      },
    );
    await assert.rejects(
      api.list("/api/v1/services", { limit: 10 }, AbortSignal.timeout(5000), () => {}),
      (e: unknown) => e instanceof ApiError && e.code === 401 && e.reason === "Unauthorized",
    );
    token = "second"; // rotated
    const page = await api.list(
      "/api/v1/services",
      { limit: 10 },
      AbortSignal.timeout(5000),
      () => {},
    );
    assert.equal(page.count, 0);
  } finally {
    await fake.close();
  }
});

Deno.test("a dropped watch ends its events with an error", async () => {
  const fake = new FakeKubeApi();
  try {
    const api = new FetchKubeApi({ server: fake.url, origin: "test" });
    const events = await api.watch("/api/v1/services", {
      resourceVersion: fake.resourceVersion,
      timeoutSeconds: 60,
      idleMs: 10_000,
    }, AbortSignal.timeout(5000));
    fake.set("services", svc("a"));
    const it = events[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.type, "ADDED");
    fake.dropWatches();
    await assert.rejects(it.next());
  } finally {
    await fake.close();
  }
});

Deno.test("a watch with no byte for idleMs is ended", async () => {
  const fake = new FakeKubeApi();
  try {
    const api = new FetchKubeApi({ server: fake.url, origin: "test" });
    const events = await api.watch("/api/v1/services", {
      resourceVersion: fake.resourceVersion,
      timeoutSeconds: 60,
      idleMs: 200,
    }, AbortSignal.timeout(5000));
    const t0 = performance.now();
    await assert.rejects(take(events, 1));
    assert.ok(performance.now() - t0 < 3000);
  } finally {
    await fake.close();
  }
});

Deno.test("HTTPS with the cluster's CA: trusted with it, refused without", async () => {
  const tls = await makeTls();
  const fake = new FakeKubeApi({
    tls: { cert: tls.serverCert, key: tls.serverKey },
    hostname: "127.0.0.1",
  });
  try {
    const ok = new FetchKubeApi({ server: fake.url, caPem: tls.caCert, origin: "test" });
    assert.equal(
      (await ok.list("/api/v1/services", { limit: 1 }, AbortSignal.timeout(5000), () => {}))
        .count,
      0,
    );
    ok.close();
    const other = await makeTls();
    const bad = new FetchKubeApi({ server: fake.url, caPem: other.caCert, origin: "test" });
    await assert.rejects(
      bad.list("/api/v1/services", { limit: 1 }, AbortSignal.timeout(5000), () => {}),
    );
    bad.close();
  } finally {
    await fake.close();
  }
});

Deno.test("parseEvent refuses what is no event; lines splits chunks and refuses a line too long", async () => {
  assert.throws(() => parseEvent("{"), /not JSON/);
  assert.throws(() => parseEvent('{"type":"SYNC","object":{}}'), /unknown event type "SYNC"/);
  const chunks = ['{"a":', '1}\n\n{"b"', ":2}"];
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const s of chunks) c.enqueue(new TextEncoder().encode(s));
      c.close();
    },
  });
  const got: string[] = [];
  for await (const l of lines(body)) got.push(l);
  assert.deepEqual(got, ['{"a":1}', '{"b":2}']);
  const big = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array(5 << 20).fill(0x61));
      c.close();
    },
  });
  await assert.rejects(
    (async () => {
      for await (const _ of lines(big)) { /* drain */ }
    })(),
    /over/,
  );
});
