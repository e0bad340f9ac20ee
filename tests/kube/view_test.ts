import assert from "node:assert/strict";
import {
  decodeService,
  decodeSlice,
  type ServiceRecord,
  type SliceRecord,
} from "../../lib/kube/objects.ts";
import { ServiceView } from "../../lib/kube/view.ts";
import {
  endpointSlice,
  type EndpointSpec,
  service,
  type ServiceSpec,
  withLabels,
} from "../../testbed/kube_objects.ts";

function svc(name: string, s: ServiceSpec): ServiceRecord {
  const r = decodeService(service("web", name, s));
  if (!r.ok) throw new Error(r.problem);
  return r.value;
}
function slice(name: string, port: number, eps: EndpointSpec[], portName = "http"): SliceRecord {
  const r = decodeSlice(
    endpointSlice("web", name, eps[0]?.addr.includes(":") ? "ipv6" : "ipv4", [{
      name: portName,
      port,
    }], eps),
  );
  if (!r.ok) throw new Error(r.problem);
  return r.value;
}
const NODE = [{ family: "ipv4" as const, addr: "192.0.2.10" }, {
  family: "ipv6" as const,
  addr: "2001:db8::10",
}];

Deno.test("a Service with ready endpoints vouches for every address × TCP port, NodePorts on the node's addresses", () => {
  const view = ServiceView.build(
    [svc("shop", {
      clusterIPs: ["10.96.0.10", "fd00::10"],
      externalIPs: ["198.51.100.7"],
      ingress: [{ ip: "203.0.113.7" }],
      ports: [{ name: "http", port: 80, nodePort: 30080 }],
    })],
    [slice("shop", 8080, [{ addr: "10.244.1.5" }]), slice("shop", 8080, [{ addr: "fd00::5" }])],
    NODE,
  );
  for (
    const [family, addr, port] of [
      ["ipv4", "10.96.0.10", 80],
      ["ipv6", "fd00::10", 80],
      ["ipv4", "198.51.100.7", 80],
      ["ipv4", "203.0.113.7", 80],
      ["ipv4", "192.0.2.10", 30080],
      ["ipv6", "2001:db8::10", 30080],
    ] as const
  ) {
    assert.equal(view.vouch(family, addr, port)?.service, "web/shop", `${addr}:${port}`);
  }
  assert.equal(view.vouched, 6);
  assert.equal(view.vouch("ipv4", "10.96.0.10", 81), undefined, "another port");
  assert.equal(
    view.vouch("ipv4", "192.0.2.10", 80),
    undefined,
    "the node address on the Service port",
  );
  assert.equal(view.vouch("ipv6", "10.96.0.10", 80), undefined, "family mismatch");
  assert.equal(
    view.vouch("ipv4", "198.51.100.99", 30080),
    undefined,
    "a NodePort on an address that is not the node's",
  );
  assert.equal(view.vouch("ipv4", "10.96.0.10", 30080), undefined, "a NodePort on a ClusterIP");
});

Deno.test("readiness is per family: an address is vouched only with ready endpoints of its family", () => {
  const s = svc("dual", {
    clusterIPs: ["10.96.0.50", "fd00::50"],
    ports: [{ name: "http", port: 80, nodePort: 30050 }],
  });
  const v4only = ServiceView.build([s], [
    slice("dual", 8080, [{ addr: "10.244.1.5" }]),
    slice("dual", 8080, [{ addr: "fd00::5", ready: false }]),
  ], NODE);
  assert.equal(v4only.vouch("ipv4", "10.96.0.50", 80)?.service, "web/dual");
  assert.equal(v4only.vouch("ipv4", "192.0.2.10", 30050)?.via, "node");
  assert.equal(v4only.vouch("ipv6", "fd00::50", 80), undefined, "IPv6 ClusterIP, no IPv6 ready");
  assert.equal(v4only.vouch("ipv6", "2001:db8::10", 30050), undefined, "IPv6 NodePort too");
  assert.equal(v4only.vouched, 2);
  const v6only = ServiceView.build([s], [slice("dual", 8080, [{ addr: "fd00::5" }])], NODE);
  assert.equal(v6only.vouch("ipv4", "10.96.0.50", 80), undefined);
  assert.equal(v6only.vouch("ipv6", "fd00::50", 80)?.service, "web/dual");
  assert.equal(v6only.vouched, 2);
});

Deno.test("no ready endpoint, or ready endpoints only on another port name: nothing vouched", () => {
  const s = svc("shop", { clusterIPs: ["10.96.0.10"], ports: [{ name: "http", port: 80 }] });
  const notReady = ServiceView.build([s], [
    slice("shop", 8080, [{ addr: "10.244.1.5", ready: false, serving: true, terminating: true }]),
  ], NODE);
  assert.equal(notReady.vouch("ipv4", "10.96.0.10", 80), undefined);
  const otherName = ServiceView.build([s], [
    slice("shop", 8080, [{ addr: "10.244.1.5" }], "metrics"),
  ], NODE);
  assert.equal(otherName.vouch("ipv4", "10.96.0.10", 80), undefined);
  const none = ServiceView.build([s], [], NODE);
  assert.equal(none.vouch("ipv4", "10.96.0.10", 80), undefined);
  assert.equal(none.vouched, 0);
});

Deno.test("ipMode Proxy ingress is never vouched, even with ready endpoints", () => {
  const view = ServiceView.build(
    [svc("lb", {
      clusterIPs: ["10.96.0.20"],
      ingress: [{ ip: "203.0.113.9", ipMode: "Proxy" }],
      ports: [{ name: "http", port: 80 }],
    })],
    [slice("lb", 8080, [{ addr: "10.244.1.6" }])],
    NODE,
  );
  assert.equal(view.vouch("ipv4", "203.0.113.9", 80), undefined);
  assert.equal(view.vouch("ipv4", "10.96.0.20", 80)?.service, "web/lb");
});

Deno.test("servingAt: the serving endpoints behind an address and port, terminating-but-serving included", () => {
  const view = ServiceView.build(
    [svc("shop", { clusterIPs: ["10.96.0.10"], ports: [{ name: "http", port: 80 }] })],
    [slice("shop", 8080, [{ addr: "10.244.1.5" }, {
      addr: "10.244.1.6",
      ready: false,
      serving: true,
      terminating: true,
    }, { addr: "10.244.1.7", ready: false, serving: false }])],
    NODE,
  );
  assert.deepEqual([...view.servingAt("10.96.0.10", 80)!].sort(), [
    "10.244.1.5 8080",
    "10.244.1.6 8080",
  ]);
  assert.equal(view.servingAt("10.96.0.99", 80), undefined);
});

Deno.test("a Service or slice labelled for another proxy vouches for nothing, ready endpoints or not", () => {
  const spec = {
    clusterIPs: ["10.96.0.30"],
    ingress: [{ ip: "203.0.113.30" }],
    ports: [{ name: "http", port: 80, nodePort: 30090 }],
  };
  const proxied = decodeSlice(
    endpointSlice("web", "lb", "ipv4", [{ name: "http", port: 8080 }], [{ addr: "10.244.1.9" }]),
  );
  const labelledSlice = decodeSlice(
    withLabels(
      endpointSlice("web", "lb", "ipv4", [{ name: "http", port: 8080 }], [{ addr: "10.244.1.9" }]),
      { "service.kubernetes.io/headless": "" },
    ),
  );
  const labelledSvc = decodeService(
    withLabels(service("web", "lb", spec), {
      "service.kubernetes.io/service-proxy-name": "other",
    }),
  );
  assert.ok(proxied.ok && labelledSlice.ok && labelledSvc.ok);
  const plain = ServiceView.build([svc("lb", spec)], [proxied.value], NODE);
  assert.equal(plain.vouch("ipv4", "203.0.113.30", 80)?.service, "web/lb", "the premise");
  for (
    const [what, view] of [
      ["Service labelled", ServiceView.build([labelledSvc.value], [proxied.value], NODE)],
      ["slice labelled", ServiceView.build([svc("lb", spec)], [labelledSlice.value], NODE)],
    ] as const
  ) {
    for (const [addr, port] of [["10.96.0.30", 80], ["203.0.113.30", 80], ["192.0.2.10", 30090]]) {
      assert.equal(
        view.vouch("ipv4", addr as string, port as number),
        undefined,
        `${what}: ${addr}`,
      );
    }
    assert.equal(view.vouched, 0, what);
  }
  const mixed = ServiceView.build([svc("lb", spec)], [labelledSlice.value], NODE);
  assert.ok(mixed.hasNotProxied("web/lb"));
  assert.ok(!plain.hasNotProxied("web/lb"));
});

Deno.test("withClusterIPsOnly (a stale view) vouches for ClusterIPs, never externalIPs, LB ingress or NodePorts", () => {
  const full = ServiceView.build(
    [svc("shop", {
      clusterIPs: ["10.96.0.10"],
      externalIPs: ["198.51.100.7"],
      ingress: [{ ip: "203.0.113.7" }],
      ports: [{ name: "http", port: 80, nodePort: 30080 }],
    })],
    [slice("shop", 8080, [{ addr: "10.244.1.5" }])],
    NODE,
  );
  const only = full.withClusterIPsOnly();
  assert.equal(full.vouch("ipv4", "198.51.100.7", 80)?.via, "external");
  assert.equal(full.vouch("ipv4", "203.0.113.7", 80)?.via, "ingress");
  assert.equal(only.vouch("ipv4", "10.96.0.10", 80)?.via, "cluster");
  for (const [addr, port] of [["198.51.100.7", 80], ["203.0.113.7", 80], ["192.0.2.10", 30080]]) {
    assert.equal(only.vouch("ipv4", addr as string, port as number), undefined, `${addr}`);
  }
  assert.equal(only.servingAt("198.51.100.7", 80)?.size, 1, "servingAt unchanged");
});

Deno.test("ServiceView.changedSince names only the Services whose slice records changed, appeared or went", () => {
  const shop = slice("shop", 8080, [{ addr: "10.244.1.5" }]);
  const cart = slice("cart", 8080, [{ addr: "10.244.1.6" }]);
  const gone = slice("gone", 8080, [{ addr: "10.244.1.7" }]);
  const before = ServiceView.build([], [shop, cart, gone], []);
  const cart2 = slice("cart", 8080, [{ addr: "10.244.1.6" }]);
  const added = slice("added", 8080, [{ addr: "10.244.1.8" }]);
  const after = ServiceView.build([], [shop, cart2, added], []);
  assert.deepEqual([...after.changedSince(before)].sort(), ["web/added", "web/cart", "web/gone"]);
  assert.deepEqual([...after.changedSince(after)], []);
  // A Service with several slices: another order or one more record is a change.
  const shopB = { ...shop, key: "web/shop-b" };
  const two = ServiceView.build([], [shop, shopB], []);
  assert.deepEqual([...ServiceView.build([], [shop, shopB], []).changedSince(two)], []);
  assert.deepEqual([...ServiceView.build([], [shopB, shop], []).changedSince(two)], ["web/shop"]);
  assert.deepEqual([...ServiceView.build([], [shop], []).changedSince(two)], ["web/shop"]);
});

Deno.test("ServiceView.forEachServing visits only the Services asked for, with their serving endpoints", () => {
  const view = ServiceView.build([], [
    slice("shop", 8080, [{ addr: "10.244.1.5" }, {
      addr: "10.244.1.9",
      ready: false,
      serving: true,
    }]),
    slice("cart", 8080, [{ addr: "10.244.1.6" }]),
  ], []);
  const seen: string[] = [];
  view.forEachServing((s, p, eps) => seen.push(`${s} ${p}: ${eps.join(",")}`), ["web/shop"]);
  assert.deepEqual(seen, ["web/shop http: 10.244.1.5 8080,10.244.1.9 8080"]);
});
