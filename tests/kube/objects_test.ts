import assert from "node:assert/strict";
import {
  decodeService,
  decodeSlice,
  endpointCount,
  notProxiedLabel,
  servingAddresses,
} from "../../lib/kube/objects.ts";
import { endpointSlice, service, withLabels } from "../../testbed/kube_objects.ts";

const addrs = (o: unknown) => {
  const r = decodeService(o);
  assert.ok(r.ok, !r.ok ? r.problem : "");
  return r.value.addresses.map((a) => `${a.family} ${a.addr}`);
};

Deno.test("a Service gives its ClusterIPs of every family, externalIPs and LB ingress IPs, canonical", () => {
  const svc = service("web", "shop", {
    clusterIPs: ["10.96.0.10", "2001:DB8:0::a"],
    externalIPs: ["198.51.100.7"],
    ingress: [{ ip: "203.0.113.7" }, { ip: "203.0.113.8", ipMode: "VIP" }],
    ports: [{ name: "http", port: 80, nodePort: 30080 }, {
      name: "dns",
      port: 53,
      protocol: "UDP",
    }],
  });
  assert.deepEqual(addrs(svc), [
    "ipv4 10.96.0.10",
    "ipv6 2001:db8::a",
    "ipv4 198.51.100.7",
    "ipv4 203.0.113.7",
    "ipv4 203.0.113.8",
  ]);
  const r = decodeService(svc);
  assert.ok(r.ok);
  assert.deepEqual(r.value.ports, [{ name: "http", port: 80, nodePort: 30080 }], "TCP ports only");
});

Deno.test("ipMode Proxy ingress, headless and ExternalName Services give no address", () => {
  assert.deepEqual(
    addrs(
      service("web", "p", {
        clusterIPs: ["10.96.0.11"],
        ingress: [{ ip: "203.0.113.9", ipMode: "Proxy" }],
        ports: [{ port: 80 }],
      }),
    ),
    ["ipv4 10.96.0.11"],
  );
  assert.deepEqual(
    addrs(
      service("web", "h", {
        clusterIPs: ["None"],
        externalIPs: ["198.51.100.9"],
        ports: [{ port: 80 }],
      }),
    ),
    [],
  );
  assert.deepEqual(
    addrs(service("web", "e", { type: "ExternalName", externalIPs: ["198.51.100.9"] })),
    [],
  );
});

Deno.test("a Service without namespace/name or with a bad port is refused, naming it", () => {
  assert.deepEqual(decodeService({ spec: {} }), {
    ok: false,
    problem: "no metadata namespace/name",
  });
  const bad = service("web", "x", { clusterIPs: ["10.96.0.12"], ports: [{ port: 0 }] });
  assert.deepEqual(decodeService(bad), { ok: false, problem: "web/x: bad port 0" });
});

Deno.test("slice conditions: ready and serving as the API documents them, unset counts as true", () => {
  const s = endpointSlice("web", "shop", "ipv6", [{ name: "http", port: 8080 }, {
    name: "q",
    port: 9,
    protocol: "UDP",
  }], [
    { addr: "2001:DB8::1" },
    { addr: "2001:db8::2", ready: false, serving: true, terminating: true },
    { addr: "2001:db8::3", ready: false, serving: false, terminating: true },
    { addr: "10.0.0.1" }, // wrong family for an IPv6 slice: ignored
  ]);
  const eps = s.endpoints as unknown[];
  eps.push({ addresses: ["2001:db8::4"], conditions: {} });
  const r = decodeSlice(s);
  assert.ok(r.ok);
  assert.equal(r.value.service, "web/shop");
  assert.deepEqual(r.value.ports, [{ name: "http", port: 8080 }]);
  assert.equal(r.value.ready, 2);
  assert.equal(r.value.serving, "2001:db8::1 2001:db8::2 2001:db8::4");
});

Deno.test("FQDN slices and slices without the service-name label are refused", () => {
  const fqdn = { ...endpointSlice("web", "shop", "ipv4", [], []), addressType: "FQDN" };
  assert.match((decodeSlice(fqdn) as { problem: string }).problem, /addressType "FQDN"/);
  const orphan = endpointSlice("web", "shop", "ipv4", [], []);
  orphan.metadata.labels = {};
  assert.match(
    (decodeSlice(orphan) as { problem: string }).problem,
    /no kubernetes.io\/service-name label/,
  );
});

Deno.test("decodeService: a Service labelled for another proxy, or headless by label, gives no address and no port", () => {
  for (
    const label of ["service.kubernetes.io/service-proxy-name", "service.kubernetes.io/headless"]
  ) {
    for (const value of ["", "other-proxy"]) {
      const svc = withLabels(
        service("web", "lb", {
          clusterIPs: ["10.96.0.12"],
          externalIPs: ["198.51.100.8"],
          ingress: [{ ip: "203.0.113.10" }],
          ports: [{ name: "http", port: 80, nodePort: 30081 }],
        }),
        { [label]: value },
      );
      const r = decodeService(svc);
      assert.ok(r.ok);
      assert.deepEqual(r.value, { key: "web/lb", addresses: [], ports: [] }, `${label}=${value}`);
    }
  }
  assert.equal(notProxiedLabel(service("web", "x", { clusterIPs: ["10.96.0.13"] })), undefined);
});

Deno.test("decodeSlice: a slice labelled for another proxy, or headless by label, keeps no endpoint and is marked", () => {
  for (
    const label of ["service.kubernetes.io/service-proxy-name", "service.kubernetes.io/headless"]
  ) {
    const r = decodeSlice(
      withLabels(
        endpointSlice("web", "lb", "ipv6", [{ name: "http", port: 8080 }], [{ addr: "fd00::5" }]),
        { [label]: "x" },
      ),
    );
    assert.ok(r.ok);
    assert.deepEqual(r.value, {
      key: "web/lb-x6",
      service: "web/lb",
      family: "ipv6",
      ports: [],
      ready: 0,
      serving: "",
      notProxied: true,
    });
  }
});

Deno.test("endpointCount counts a slice's addresses, servingAddresses lists the serving ones", () => {
  const r = decodeSlice(endpointSlice("web", "shop", "ipv4", [{ port: 8080 }], [
    { addr: "10.244.1.5" },
    { addr: "10.244.1.6", ready: false, serving: true },
    { addr: "10.244.1.7", ready: false, serving: false },
  ]));
  assert.ok(r.ok);
  assert.deepEqual(servingAddresses(r.value), ["10.244.1.5", "10.244.1.6"]);
  assert.equal(endpointCount(r.value), 2);
  assert.equal(endpointCount({ ready: 0, serving: "" }), 0);
  assert.deepEqual(servingAddresses({ serving: "" }), []);
});
