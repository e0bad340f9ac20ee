import assert from "node:assert/strict";
import { decodeService, decodeSlice } from "../../../lib/kube/objects.ts";
import { ServiceView } from "../../../lib/kube/view.ts";
import { KubernetesProvider } from "../../../lib/rules/providers/kubernetes.ts";
import { UnnatedRule } from "../../../lib/rules/unnated.ts";
import type { Candidate } from "../../../lib/model/snapshot.ts";
import { endpointSlice, service } from "../../../testbed/kube_objects.ts";

function view(ready: boolean, ipMode?: "Proxy"): ServiceView {
  const s = decodeService(service("web", "shop", {
    clusterIPs: ["10.96.0.10"],
    ingress: [{ ip: "203.0.113.7", ...(ipMode ? { ipMode } : {}) }],
    ports: [{ name: "http", port: 80, nodePort: 30080 }],
  }));
  const e = decodeSlice(
    endpointSlice("web", "shop", "ipv4", [{ name: "http", port: 8080 }], [{
      addr: "10.244.1.5",
      ready,
    }]),
  );
  if (!s.ok || !e.ok) throw new Error("fixture");
  return ServiceView.build([s.value], [e.value], [{ family: "ipv4", addr: "192.0.2.10" }]);
}

const stuck = (dst: string, dport: number, sport = 40000): Candidate => ({
  family: "ipv4",
  src: "10.1.0.7",
  dst,
  sport,
  dport,
  zone: 0,
  timeout: 100,
  seenFrom: 10_000,
  seenTo: 10_001,
  id: sport,
});

function decideWith(v: ServiceView, candidates: Candidate[]) {
  let calls = 0;
  const rule = new UnnatedRule({
    afterMs: 2000,
    synSentTimeoutS: 120,
    providers: [new KubernetesProvider({ view: () => (calls++, v) })],
  });
  const snapshot = {
    candidates,
    scanned: candidates.length,
    malformed: 0,
    startedAt: 10_000,
    finishedAt: 10_002,
  };
  const ds = rule.decide({
    snapshot,
    track: { stale: [], renewals: 0, tracked: 0, forgotten: 0 },
    sameSince: () => undefined,
  });
  return { ds, calls };
}

Deno.test("the un-NATed rule with the Kubernetes provider frees a single stuck client of a ready Service", () => {
  const { ds, calls } = decideWith(view(true), [
    stuck("10.96.0.10", 80, 1),
    stuck("203.0.113.7", 80, 2),
    stuck("192.0.2.10", 30080, 3),
    stuck("10.96.0.10", 81, 4),
    stuck("198.51.100.1", 80, 5),
  ]);
  assert.deepEqual(ds.map((d) => [d.tuple.sport, d.rule === "unnated" && d.provider, d.reason]), [
    [1, "kubernetes", "Service web/shop port http (80) has ready endpoints"],
    [2, "kubernetes", "Service web/shop port http (80) has ready endpoints"],
    [
      3,
      "kubernetes",
      "Service web/shop port http (80) has ready endpoints (NodePort 30080 on this node)",
    ],
  ]);
  assert.equal(calls, 1, "the view is taken once per read");
});

Deno.test("no ready endpoint, or ingress in ipMode Proxy: nothing is freed", () => {
  assert.deepEqual(
    decideWith(view(false), [stuck("10.96.0.10", 80), stuck("203.0.113.7", 80, 2)]).ds,
    [],
  );
  const proxy = decideWith(view(true, "Proxy"), [stuck("203.0.113.7", 80)]).ds;
  assert.deepEqual(proxy, []);
});

Deno.test("an empty view (unsynced or expired) vouches for nothing", () => {
  assert.deepEqual(decideWith(ServiceView.empty(), [stuck("10.96.0.10", 80)]).ds, []);
});
