import assert from "node:assert/strict";
import {
  defaultRouteInterfaces,
  inCidr,
  type NodeAddressSources,
  nodePortAddresses,
  parseNodePortAddresses,
} from "../../lib/kube/node_addresses.ts";

const iface = (name: string, address: string) =>
  ({
    name,
    family: address.includes(":") ? "IPv6" : "IPv4",
    address,
    netmask: "",
    scopeid: null,
    cidr: "",
    mac: "",
  }) as Deno.NetworkInterfaceInfo;

const ROUTE = [
  "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT",
  "lo\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0",
  "eth1\t00000000\t01020033\t0003\t0\t0\t200\t00000000\t0\t0\t0",
  "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
  "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
].join("\n");
const V6 = [
  "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1",
  "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth1",
  "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000002 00000800 00000002 00000000 00000003     eth0",
].join("\n");

const sources = (route: string, v6: string): NodeAddressSources => ({
  interfaces: () => [
    iface("lo", "127.0.0.1"),
    iface("lo", "::1"),
    iface("eth0", "fe80::10%eth0"),
    iface("eth0", "192.0.2.10"),
    iface("eth0", "192.0.2.11"),
    iface("eth1", "fe80::20%eth1"),
    iface("eth1", "2001:DB8::20"),
    iface("eth1", "51.0.2.20"),
  ],
  readFile: (p) => (p === "/proc/net/route" ? route : p === "/proc/net/ipv6_route" ? v6 : ""),
});

Deno.test("defaultRouteInterfaces: the lowest-metric default route's interface per family, never lo", () => {
  assert.deepEqual(defaultRouteInterfaces(sources(ROUTE, V6)), { ipv4: "eth0", ipv6: "eth1" });
  assert.deepEqual(defaultRouteInterfaces(sources("", "")), {});
});

Deno.test("nodePortAddresses primary: the first global address of each family's default-route interface only", () => {
  assert.deepEqual(
    nodePortAddresses({ kind: "primary" }, sources(ROUTE, V6)),
    [{ family: "ipv4", addr: "192.0.2.10" }, { family: "ipv6", addr: "2001:db8::20" }],
  );
  assert.deepEqual(
    nodePortAddresses({ kind: "primary" }, sources(ROUTE, "")),
    [{ family: "ipv4", addr: "192.0.2.10" }],
    "no IPv6 default route: no IPv6 NodePort address",
  );
  assert.deepEqual(nodePortAddresses({ kind: "primary" }, sources("", "")), []);
});

Deno.test("nodePortAddresses with CIDRs: every local address inside one, loopback too when covered", () => {
  const c = parseNodePortAddresses("192.0.2.0/28, 127.0.0.0/8,2001:db8::/64");
  assert.ok(c);
  assert.deepEqual(nodePortAddresses(c, sources(ROUTE, V6)).map((a) => a.addr), [
    "127.0.0.1",
    "192.0.2.10",
    "192.0.2.11",
    "2001:db8::20",
  ]);
  const one = parseNodePortAddresses("192.0.2.11/32")!;
  assert.deepEqual(nodePortAddresses(one, sources(ROUTE, V6)).map((a) => a.addr), ["192.0.2.11"]);
});

Deno.test("parseNodePortAddresses refuses what is not primary or CIDRs; inCidr compares the prefix bits only", () => {
  for (const bad of ["", "all", "10.0.0.0", "10.0.0.0/33", "::/129", "10.0.0.0/8,", "x/8"]) {
    assert.equal(parseNodePortAddresses(bad), undefined, bad);
  }
  const c = parseNodePortAddresses("10.1.2.128/25");
  assert.ok(c?.kind === "cidrs");
  const net = c.cidrs[0]!;
  assert.ok(inCidr(net, "ipv4", "10.1.2.200"));
  assert.ok(!inCidr(net, "ipv4", "10.1.2.127"));
  assert.ok(!inCidr(net, "ipv6", "::a01:280"), "another family");
  const all = parseNodePortAddresses("::/0");
  assert.ok(all?.kind === "cidrs" && inCidr(all.cidrs[0]!, "ipv6", "2001:db8::1"));
});
