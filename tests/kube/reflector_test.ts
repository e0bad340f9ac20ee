import assert from "node:assert/strict";
import { memoryLog, until } from "../support/kube_test_kit.ts";
import { FetchKubeApi } from "../../lib/kube/api.ts";
import { decodeService, type ServiceRecord } from "../../lib/kube/objects.ts";
import { Reflector } from "../../lib/kube/reflector.ts";
import { FakeKubeApi } from "../../testbed/fake_kube_api.ts";
import { service } from "../../testbed/kube_objects.ts";

const svc = (name: string, ip = "10.96.0.10") =>
  service("web", name, { clusterIPs: [ip], ports: [{ port: 80 }] });

interface Rig {
  fake: FakeKubeApi;
  r: Reflector<ServiceRecord>;
  log: ReturnType<typeof memoryLog>;
  sleeps: number[];
  stop: AbortController;
  done: Promise<void>;
}

async function withReflector(
  prepare: (fake: FakeKubeApi) => void,
  body: (rig: Rig) => Promise<void>,
  o: { maxItems?: number; maxWeight?: number; maxDropped?: number; maxPageBytes?: number } = {},
): Promise<void> {
  const fake = new FakeKubeApi();
  prepare(fake);
  const log = memoryLog();
  const sleeps: number[] = [];
  const api = new FetchKubeApi(
    { server: fake.url, origin: "test" },
    o.maxPageBytes ? { maxPageBytes: o.maxPageBytes } : {},
  );
  const r = new Reflector({
    api,
    path: "/api/v1/services",
    what: "services",
    decode: decodeService,
    maxItems: o.maxItems ?? 100,
    // A Service weighs its port count (as a slice weighs its endpoints).
    weight: (v: ServiceRecord) => v.ports.length,
    ...(o.maxWeight !== undefined ? { maxWeight: o.maxWeight } : {}),
    ...(o.maxDropped !== undefined ? { maxDropped: o.maxDropped } : {}),
    log,
    pageSize: 2,
    // Back-off recorded, not waited (a few ms, so the loop does not spin).
    sleep: (ms) => (sleeps.push(ms), new Promise((res) => setTimeout(res, 2))),
  });
  const stop = new AbortController();
  const done = r.run(stop.signal);
  try {
    await body({ fake, r, log, sleeps, stop, done });
  } finally {
    stop.abort();
    await done;
    api.close();
    await fake.close();
  }
}

Deno.test("the reflector lists every page, then watches from the list's resourceVersion", async () => {
  await withReflector(
    (f) => ["a", "b", "c"].forEach((n) => f.set("services", svc(n))),
    async ({ fake, r }) => {
      await until(() => r.state.watching, "the watch");
      assert.deepEqual([...r.items.keys()].sort(), ["web/a", "web/b", "web/c"]);
      assert.equal(r.state.lists, 1);
      const watch = fake.requests.find((q) => q.query.watch === "1")!;
      assert.equal(watch.query.resourceVersion, r.resourceVersion);
      assert.equal(fake.requests.filter((q) => q.query.continue).length, 1, "second page asked");
      fake.set("services", svc("d", "10.96.0.11"));
      fake.delete("services", "web", "a");
      await until(() => r.items.has("web/d") && !r.items.has("web/a"), "the events");
      assert.equal(r.items.get("web/d")?.addresses[0]?.addr, "10.96.0.11");
    },
  );
});

Deno.test("a bookmark moves the resourceVersion on without changing the objects", async () => {
  await withReflector((f) => f.set("services", svc("a")), async ({ fake, r }) => {
    await until(() => r.state.watching, "the watch");
    fake.set("endpointslices", { metadata: { namespace: "x", name: "y" } }); // moves the RV elsewhere
    fake.bookmark("services");
    await until(() => r.resourceVersion === fake.resourceVersion, "the bookmark's RV");
    assert.equal(r.items.size, 1);
  });
});

Deno.test("410 Gone is answered by a fresh list, without back-off; a dropped watch resumes from its RV without a list", async () => {
  await withReflector((f) => f.set("services", svc("a")), async ({ fake, r, sleeps }) => {
    await until(() => r.state.watching, "the watch");
    // Dropped: the reflector watches again from the RV it had, no new list.
    fake.set("services", svc("b"));
    await until(() => r.items.has("web/b"), "b");
    const rv = r.resourceVersion;
    fake.dropWatches();
    await until(() => fake.watching === 1 && r.state.watching, "the second watch");
    assert.equal(r.state.lists, 1);
    assert.equal(
      fake.requests.filter((q) => q.query.watch === "1").at(-1)!.query.resourceVersion,
      rv,
    );
    // History gone while it was away: 410, a fresh list, which drops what was deleted meanwhile.
    const slept = sleeps.length;
    fake.dropWatches();
    fake.delete("services", "web", "a");
    fake.compact("services");
    await until(() => r.state.lists === 2 && r.state.watching, "the relist");
    assert.deepEqual([...r.items.keys()], ["web/b"]);
    assert.equal(sleeps.length - slept, 1, "the drop backed off once, the 410 not at all");
  });
});

Deno.test("failures back off 1 s, 2 s, 4 s … up to 30 s, and the count starts again once a watch makes progress", async () => {
  await withReflector((f) => f.failNext(7), async ({ fake, r, sleeps, log }) => {
    await until(() => r.state.watching, "the watch after the failures");
    fake.bookmark("services");
    await until(
      () => r.resourceVersion === fake.resourceVersion && sleeps.length === 7,
      "bookmark",
    );
    assert.deepEqual(sleeps.slice(0, 7), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    assert.ok(log.lines.some((l) => l.startsWith("warn services: Kubernetes API call failed")));
    assert.ok(log.lines.some((l) => l === "info services: Kubernetes API answers again"));
    assert.equal(r.state.lastError, undefined);
    fake.failNext(1);
    fake.dropWatches();
    await until(
      () => sleeps.length >= 9 && r.state.watching,
      "the watch after a drop and a failure",
    );
    assert.deepEqual(sleeps.slice(7), [1000, 2000], "counting from 1 s again");
  });
});

Deno.test("objects past maxItems are counted, not kept; a deletion of a kept one makes room", async () => {
  await withReflector(
    (f) => ["a", "b", "c"].forEach((n) => f.set("services", svc(n))),
    async ({ fake, r }) => {
      await until(() => r.state.watching, "the watch");
      assert.equal(r.items.size, 2);
      assert.equal(r.state.overflow, 1);
      fake.set("services", svc("d"));
      await until(() => r.state.overflow === 2, "d counted");
      fake.delete("services", "web", "d");
      await until(() => r.state.overflow === 1, "d forgotten");
      assert.equal(r.items.size, 2);
    },
    { maxItems: 2 },
  );
});

Deno.test("an object the decoder refuses in a watch event keeps its last good version", async () => {
  await withReflector((f) => f.set("services", svc("a")), async ({ fake, r }) => {
    await until(() => r.state.watching, "the watch");
    const bad = svc("a");
    (bad.spec as { ports: { port: number }[] }).ports[0]!.port = 70000;
    fake.set("services", bad);
    await until(() => r.state.refused === 1, "the refusal");
    assert.equal(r.items.get("web/a")?.ports[0]?.port, 80);
  });
});

Deno.test("a watch the server ends at its timeout is resumed from its RV, and the reflector stays watching", async () => {
  await withReflector((f) => f.set("services", svc("a")), async ({ fake, r, sleeps }) => {
    await until(() => r.state.watching, "the watch");
    const watches = () => fake.requests.filter((q) => q.query.watch === "1").length;
    const seen: boolean[] = [];
    const probe = setInterval(() => seen.push(r.state.watching), 1);
    fake.bookmark("services"); // kube-apiserver sends one before it ends a watch
    await until(() => r.state.progressAt !== undefined && fake.watching === 1, "the bookmark");
    await new Promise((res) => setTimeout(res, 20));
    fake.endWatches();
    await until(() => watches() === 2 && fake.watching === 1, "the second watch");
    clearInterval(probe);
    assert.ok(seen.every((w) => w), "never reported as not watching");
    assert.deepEqual(sleeps, [], "no back-off");
    assert.equal(r.state.lists, 1);
  });
});

const ports = (name: string, n: number) =>
  service("web", name, {
    clusterIPs: ["10.96.0.10"],
    ports: Array.from({ length: n }, (_, i) => ({ name: `p${i}`, port: 80 + i })),
  });

Deno.test("a watch that ends without an event or bookmark is a failure: backed off, doubling", async () => {
  await withReflector((f) => f.set("services", svc("a")), async ({ fake, r, sleeps, log }) => {
    for (let i = 1; i <= 3; i++) {
      await until(() => fake.watching === 1, `watch ${i}`);
      fake.endWatches();
      await until(() => sleeps.length === i, `back-off ${i}`);
    }
    assert.deepEqual(sleeps, [1000, 2000, 4000]);
    assert.ok(log.lines.some((l) => l.startsWith("warn services: Kubernetes API call failed")));
    assert.equal(r.state.lists, 1, "no relist for a watch that merely ended");
  });
});

Deno.test("410 Gone again and again: the first relists at once, the next ones back off", async () => {
  await withReflector((f) => f.set("services", svc("a")), async ({ fake, r, sleeps, log }) => {
    for (let i = 1; i <= 3; i++) {
      await until(() => fake.watching === 1 && r.state.watching, `watch ${i}`);
      fake.dropWatches();
      fake.set("services", svc("b")); // history past the watch's RV …
      fake.compact("services"); // … forgotten: its reconnect gets 410
      await until(() => r.state.lists === i + 1, `relist ${i}`);
    }
    // Each drop backs off as a failure (1 s, 2 s, 4 s); the 410s: none, then 1 s, then 2 s.
    assert.deepEqual(sleeps, [1000, 2000, 1000, 4000, 2000]);
    assert.ok(log.lines.some((l) => l.startsWith("info services: resourceVersion too old")));
  });
});

Deno.test("objects past maxWeight (endpoints) are counted, not kept; an update past it drops the old version", async () => {
  await withReflector(
    (f) => ["a", "b", "c"].forEach((n) => f.set("services", ports(n, 2))),
    async ({ fake, r, log }) => {
      await until(() => r.state.watching, "the watch");
      assert.deepEqual([...r.items.keys()], ["web/a", "web/b"], "4 of 5 weight units");
      assert.equal(r.state.overflow, 1);
      assert.ok(log.lines.some((l) => l.startsWith("warn services: more objects than kept")));
      fake.set("services", ports("a", 4));
      await until(() => !r.items.has("web/a"), "a grown past the bound, not kept as it was");
      assert.equal(r.state.overflow, 2);
      fake.set("services", ports("b", 1));
      fake.set("services", ports("d", 1));
      await until(() => r.items.has("web/d"), "room again");
    },
    { maxWeight: 5 },
  );
});

Deno.test("the keys of objects not kept are remembered up to maxDropped, then only counted", async () => {
  await withReflector(
    (f) => ["a", "b", "c", "d"].forEach((n) => f.set("services", svc(n))),
    async ({ fake, r, log }) => {
      await until(() => r.state.watching, "the watch");
      assert.equal(r.items.size, 1);
      assert.equal(r.state.overflow, 3, "2 remembered + 1 counted");
      assert.ok(log.lines.some((l) => l.includes("more objects than kept")));
      fake.delete("services", "web", "b");
      fake.delete("services", "web", "c");
      fake.delete("services", "web", "d");
      await until(() => r.state.overflow === 1, "the remembered ones forgotten");
      assert.equal(r.state.overflow, 1, "the unremembered one stays counted until a list");
    },
    { maxItems: 1, maxDropped: 2 },
  );
});

Deno.test("a list page over the byte limit is not read whole; the reflector asks for smaller pages", async () => {
  await withReflector(
    (f) => ["a", "b", "c", "d"].forEach((n) => f.set("services", svc(n))),
    async ({ fake, r, log }) => {
      await until(() => r.state.watching, "the watch");
      assert.equal(r.items.size, 4);
      const limits = fake.requests.filter((q) => q.query.watch === undefined).map((q) =>
        q.query.limit
      );
      assert.equal(limits[0], "2");
      assert.ok(limits.includes("1"), `smaller pages: ${limits}`);
      assert.ok(log.lines.some((l) => l.startsWith("warn services: a list page was too large")));
    },
    // A page of one Service is about 600 bytes as the fake sends it; of two, 1,060.
    { maxPageBytes: 800 },
  );
});
