import assert from "node:assert/strict";
import { memoryLog, until } from "../support/kube_test_kit.ts";
import { FetchKubeApi } from "../../lib/kube/api.ts";
import { KubeServices } from "../../lib/kube/services.ts";
import { FakeKubeApi } from "../../testbed/fake_kube_api.ts";
import {
  endpointSlice,
  type EndpointSpec,
  service,
  withLabels,
} from "../../testbed/kube_objects.ts";

const quiet = memoryLog();

const SVC = service("web", "shop", {
  clusterIPs: ["10.96.0.10"],
  ports: [{ name: "http", port: 80, nodePort: 30080 }],
});
const slice = (eps: EndpointSpec[]) =>
  endpointSlice("web", "shop", "ipv4", [{ name: "http", port: 8080 }], eps);

/** The settle time passes and both streams make progress (a bookmark each). */
function settle(fake: FakeKubeApi, clock: { now: number }, ms = 5000): void {
  clock.now += ms;
  fake.bookmark("services");
  fake.bookmark("endpointslices");
}

async function withServices(
  body: (x: { fake: FakeKubeApi; kube: KubeServices; clock: { now: number } }) => Promise<void>,
  o: { maxSlices?: number; log?: ReturnType<typeof memoryLog> } = {},
): Promise<void> {
  const fake = new FakeKubeApi();
  fake.set("services", SVC);
  fake.set("endpointslices", slice([{ addr: "10.244.1.5" }, { addr: "10.244.1.6" }]));
  const clock = { now: 1_000_000 };
  const api = new FetchKubeApi({ server: fake.url, origin: "test" });
  const kube = new KubeServices({
    api,
    log: o.log ?? quiet,
    clock: () => clock.now,
    sleep: () => new Promise((r) => setTimeout(r, 2)),
    nodeAddresses: () => [{ family: "ipv4", addr: "192.0.2.10" }],
    staleLimitMs: 60_000,
    progressLimitMs: 30_000,
    ...(o.maxSlices ? { maxSlices: o.maxSlices } : {}),
  });
  const stop = new AbortController();
  const done = kube.run(stop.signal);
  try {
    await until(() => kube.freshness() === "live", "a live view");
    await body({ fake, kube, clock });
  } finally {
    stop.abort();
    await done;
    api.close();
    await fake.close();
  }
}

Deno.test("the view follows the API: vouched while ready endpoints exist, NodePort on the node's address", async () => {
  await withServices(async ({ fake, kube }) => {
    assert.equal(kube.view().vouch("ipv4", "10.96.0.10", 80)?.service, "web/shop");
    assert.equal(kube.view().vouch("ipv4", "192.0.2.10", 30080)?.via, "node");
    fake.set("endpointslices", slice([{ addr: "10.244.1.5", ready: false }]));
    await until(
      () => kube.view().vouch("ipv4", "10.96.0.10", 80) === undefined,
      "no ready endpoint",
    );
  });
});

Deno.test("removedAt: an endpoint seen serving, then gone or serving: false; never a serving one", async () => {
  await withServices(async ({ fake, kube, clock }) => {
    kube.view();
    assert.equal(kube.removedAt("10.96.0.10", 80, "10.244.1.5 8080"), undefined, "serving");
    assert.equal(
      kube.removedAt("10.96.0.10", 80, "10.244.9.9 8080"),
      undefined,
      "never seen: unknown",
    );
    clock.now += 1000;
    fake.set("endpointslices", slice([{ addr: "10.244.1.6", ready: false, serving: false }]));
    await until(() => (kube.view(), kube.removedCount === 2), "both recorded");
    assert.equal(kube.removedAt("10.96.0.10", 80, "10.244.1.5 8080"), undefined, "not settled");
    clock.now += 5000;
    assert.equal(
      kube.removedAt("10.96.0.10", 80, "10.244.1.5 8080"),
      undefined,
      "old enough, but no watch confirmed it since",
    );
    fake.bookmark("endpointslices");
    await until(() => kube.slices.state.progressAt === clock.now, "the slices bookmark");
    assert.equal(
      kube.removedAt("10.96.0.10", 80, "10.244.1.5 8080"),
      undefined,
      "confirmed by one watch only",
    );
    fake.bookmark("services");
    await until(
      () => kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080") !== undefined,
      "1.6 not serving",
    );
    assert.deepEqual(kube.removedAt("10.96.0.10", 80, "10.244.1.5 8080"), {
      at: 1_001_000,
      service: "web/shop",
    }, "1.5 gone");
    assert.equal(
      kube.removedAt("10.96.0.10", 81, "10.244.1.5 8080"),
      undefined,
      "another Service port",
    );
    fake.set("endpointslices", slice([{ addr: "10.244.1.5" }]));
    await until(
      () => kube.removedAt("10.96.0.10", 80, "10.244.1.5 8080") === undefined,
      "1.5 back",
    );
    clock.now += 170_000;
    fake.bookmark("endpointslices");
    fake.set("services", SVC); // a change: the view is rebuilt, removals past their time dropped
    await until(
      () =>
        kube.slices.state.progressAt === clock.now && kube.services.state.progressAt === clock.now,
      "progress at 176 s",
    );
    assert.ok(
      kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080") !== undefined,
      "still remembered at 176 s",
    );
    clock.now += 11_000;
    fake.bookmark("endpointslices");
    fake.bookmark("services");
    fake.set("services", SVC); // a change, so the view is rebuilt and old removals expire
    await until(() => kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080") === undefined, "expired");
  });
});

Deno.test("watch down: stale (last view kept, nothing removed), then expired (nothing vouched)", async () => {
  await withServices(async ({ fake, kube, clock }) => {
    kube.view();
    fake.set("endpointslices", slice([{ addr: "10.244.1.5" }]));
    await until(() => (kube.view(), kube.removedCount === 1), "1.6 recorded");
    settle(fake, clock);
    await until(
      () => kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080") !== undefined,
      "1.6 removed",
    );
    fake.failNext(1000);
    fake.dropWatches();
    await until(() => kube.freshness() === "stale", "stale");
    assert.equal(
      kube.view().vouch("ipv4", "10.96.0.10", 80)?.service,
      "web/shop",
      "last view kept",
    );
    assert.equal(
      kube.view().vouch("ipv4", "192.0.2.10", 30080),
      undefined,
      "a stale view vouches for ClusterIPs only",
    );
    assert.equal(
      kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080"),
      undefined,
      "not live: no removals",
    );
    clock.now += 61_000;
    assert.equal(kube.freshness(), "expired");
    assert.equal(kube.view().vouch("ipv4", "10.96.0.10", 80), undefined);
    assert.ok(quiet.lines.some((l) => l.startsWith("warn Kubernetes API unreachable; keeping")));
    assert.ok(
      quiet.lines.some((l) => l.startsWith("error Kubernetes API unreachable for too long")),
    );
  });
});

Deno.test("with slices left out over the bound, nothing counts as removed", async () => {
  await withServices(async ({ fake, kube }) => {
    kube.view();
    fake.set(
      "endpointslices",
      endpointSlice("web", "other", "ipv4", [{ port: 1 }], [{ addr: "10.244.7.7" }]),
    );
    fake.set("endpointslices", slice([{ addr: "10.244.1.5" }]));
    await until(() => kube.status().overflow === 1, "overflow");
    await until(() => kube.view().servingAt("10.96.0.10", 80)?.size === 1, "the change");
    assert.equal(kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080"), undefined);
  }, { maxSlices: 1 });
});

Deno.test("an endpoint removed from one Service but serving another at the same address is kept", async () => {
  await withServices(async ({ fake, kube, clock }) => {
    const shared = { externalIPs: ["198.51.100.7"], ports: [{ name: "http", port: 80 }] };
    fake.set("services", service("web", "shop", { clusterIPs: ["10.96.0.10"], ...shared }));
    fake.set("services", service("web", "blue", { clusterIPs: ["10.96.0.11"], ...shared }));
    fake.set(
      "endpointslices",
      endpointSlice("web", "blue", "ipv4", [{ name: "http", port: 8080 }], [{
        addr: "10.244.1.5",
      }]),
    );
    await until(() => kube.view().servingAt("198.51.100.7", 80)?.size === 2, "both Services");
    fake.set("endpointslices", slice([{ addr: "10.244.1.6" }]));
    await until(() => (kube.view(), kube.removedCount === 1), "1.5 recorded");
    settle(fake, clock);
    await until(
      () => kube.removedAt("10.96.0.10", 80, "10.244.1.5 8080") !== undefined,
      "1.5 gone from shop",
    );
    assert.equal(
      kube.removedAt("198.51.100.7", 80, "10.244.1.5 8080"),
      undefined,
      "still serving blue there",
    );
  });
});

Deno.test("removedAt: endpoints hidden by a slice turning labelled for another proxy are not removed", async () => {
  await withServices(async ({ fake, kube }) => {
    kube.view();
    fake.set(
      "endpointslices",
      withLabels(slice([{ addr: "10.244.1.5" }, { addr: "10.244.1.6" }]), {
        "service.kubernetes.io/service-proxy-name": "other",
      }),
    );
    await until(
      () => kube.view().vouch("ipv4", "10.96.0.10", 80) === undefined,
      "the labelled slice",
    );
    assert.equal(kube.removedAt("10.96.0.10", 80, "10.244.1.5 8080"), undefined);
    assert.equal(kube.removedCount, 0);
  });
});

Deno.test("freshness: live needs both watches open and making progress; expiry counts from the older progress", async () => {
  await withServices(async ({ fake, kube, clock }) => {
    // One watch down (its reconnects fail), the other open and moving: not live.
    fake.failNext(1000);
    fake.dropWatches("services");
    await until(() => !kube.services.state.watching, "services watch down");
    fake.bookmark("endpointslices");
    assert.equal(kube.freshness(), "stale", "one watch open is not enough");
    // The open one keeps moving; the other's last progress passes the stale limit: expired.
    clock.now += 61_000;
    fake.bookmark("endpointslices");
    await until(() => kube.slices.state.progressAt === clock.now, "slices moving");
    assert.equal(kube.freshness(), "expired", "from the older of the two progresses");
  });
});

Deno.test("freshness: both streams open but one silent past the progress limit is stale, live again on its bookmark", async () => {
  await withServices(async ({ fake, kube, clock }) => {
    clock.now += 31_000;
    fake.bookmark("endpointslices");
    await until(() => kube.slices.state.progressAt === clock.now, "slices moving");
    assert.ok(kube.services.state.watching && kube.slices.state.watching, "both open");
    assert.equal(kube.freshness(), "stale", "services silent for 31 s");
    fake.bookmark("services");
    await until(() => kube.freshness() === "live", "live again");
  });
});

Deno.test("removal records are dropped once objects are left out over a bound", async () => {
  await withServices(async ({ fake, kube, clock }) => {
    kube.view();
    fake.set("endpointslices", slice([{ addr: "10.244.1.5" }]));
    await until(() => (kube.view(), kube.removedCount === 1), "1.6 recorded");
    settle(fake, clock);
    await until(() => kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080") !== undefined, "known");
    for (const name of ["other", "third"]) {
      fake.set(
        "endpointslices",
        endpointSlice("web", name, "ipv4", [{ port: 1 }], [{ addr: "10.244.7.7" }]),
      );
    }
    await until(() => kube.status().overflow === 1, "a slice left out");
    settle(fake, clock);
    await until(() => kube.freshness() === "live" && (kube.view(), true), "rebuilt");
    assert.equal(kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080"), undefined);
    assert.equal(kube.removedCount, 0);
  }, { maxSlices: 2 });
});

Deno.test("removedAt: a removal both watches confirmed still waits for the settle time (5 s)", async () => {
  await withServices(async ({ fake, kube, clock }) => {
    kube.view();
    fake.set("endpointslices", slice([{ addr: "10.244.1.5" }]));
    await until(() => (kube.view(), kube.removedCount === 1), "1.6 recorded");
    settle(fake, clock, 1000);
    await until(
      () =>
        kube.slices.state.progressAt === clock.now && kube.services.state.progressAt === clock.now,
      "both confirmed",
    );
    assert.equal(kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080"), undefined, "1 s old");
    clock.now += 3_999;
    assert.equal(kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080"), undefined, "4.999 s old");
    clock.now += 1;
    assert.equal(kube.removedAt("10.96.0.10", 80, "10.244.1.6 8080")?.service, "web/shop");
  });
});

Deno.test("KubeServices.view vouches for nothing while slices are left out over a bound, and again once they fit; said once each way", async () => {
  const log = memoryLog();
  await withServices(async ({ fake, kube }) => {
    assert.equal(kube.view().vouch("ipv4", "10.96.0.10", 80)?.service, "web/shop");
    fake.set(
      "endpointslices",
      endpointSlice("web", "other", "ipv4", [{ port: 1 }], [{ addr: "10.244.7.7" }]),
    );
    await until(() => kube.status().overflow === 1, "a slice left out");
    assert.equal(kube.view().vouch("ipv4", "10.96.0.10", 80), undefined, "the kept slice is ready");
    assert.equal(kube.view().vouch("ipv4", "192.0.2.10", 30080), undefined);
    assert.equal(kube.status().destinations, 0);
    assert.equal(kube.view().servingAt("10.96.0.10", 80)?.size, 2, "what is kept is still known");
    fake.delete("endpointslices", "web", "other-x4");
    await until(() => kube.status().overflow === 0, "back within the bound");
    assert.equal(kube.view().vouch("ipv4", "10.96.0.10", 80)?.service, "web/shop");
    assert.ok(kube.status().destinations > 0);
    const said = (p: string) => log.lines.filter((l) => l.startsWith(p)).length;
    assert.equal(said("warn Kubernetes objects over the bounds"), 1);
    assert.equal(said("info Kubernetes objects fit the bounds again"), 1);
  }, { maxSlices: 1, log });
});
