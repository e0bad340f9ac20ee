/**
 * The evaluator on rule sets in the shapes real tools write: kube-proxy in
 * iptables mode (as iptables-nft 1.8.9 stores it: native address/port
 * tests, xtables comment/statistic/addrtype matches and DNAT/MARK targets),
 * kube-proxy in nftables mode (concatenated verdict maps, numgen), Docker,
 * firewalld and ufw.
 */
import assert from "node:assert/strict";
import { evaluate } from "../../lib/nat/evaluate.ts";
import { u32Host } from "../../lib/nat/bits.ts";
import type { NatAnswer, NftChain, NftSet } from "../../lib/nat/ruleset.ts";
import { formatTarget } from "../../lib/nat/targets.ts";
import {
  addr,
  baseChain,
  chain,
  concatKey,
  e,
  FakeView,
  rule,
  set,
  syn,
  table,
} from "../support/nft_builder.ts";
import { markTargetInfo, natRangeInfo, tcpInfo } from "../support/xt_builder.ts";

function show(a: NatAnswer): string[] | string {
  if (a.kind === "translated") return a.targets.map(formatTarget).sort();
  return a.kind === "not_proven" ? `not_proven: ${a.reason}` : "need";
}

const CLIENT = "10.0.0.2:40000";
const NAT = table("ip", "nat");
const comment = () => e.match("comment", new Uint8Array(256));
const statistic = () => e.match("statistic", new Uint8Array(24));
const addrtypeLocal = () => e.match("addrtype", new Uint8Array(8), 1);
const xtDnat = (a: string, p?: number) =>
  e.target("DNAT", natRangeInfo(2, p === undefined ? { a1: a } : { a1: a, p1: p }), 2);

/** kube-proxy iptables mode: one Service 10.96.0.10:80 (NodePort 30080), two endpoints. */
function kubeIptables(): NftChain[] {
  const sep = (name: string, ip: string) =>
    chain(NAT, name, [
      rule(e.saddr(ip), e.counter(), e.jump("KUBE-MARK-MASQ")),
      rule(e.tcp(), e.match("tcp", tcpInfo({})), e.counter(), xtDnat(ip, 8080)),
    ]);
  return [
    baseChain(NAT, "PREROUTING", "prerouting", -100, [rule(comment(), e.jump("KUBE-SERVICES"))]),
    baseChain(NAT, "OUTPUT", "output", -100, [rule(comment(), e.jump("KUBE-SERVICES"))]),
    chain(NAT, "KUBE-SERVICES", [
      rule(e.tcp(), e.daddr("10.96.0.10"), comment(), e.dport(80), e.jump("KUBE-SVC-A")),
      rule(comment(), addrtypeLocal(), e.jump("KUBE-NODEPORTS")),
    ]),
    chain(NAT, "KUBE-NODEPORTS", [
      rule(e.tcp(), comment(), e.dport(30080), e.jump("KUBE-EXT-A")),
    ]),
    chain(NAT, "KUBE-EXT-A", [
      rule(comment(), e.jump("KUBE-MARK-MASQ")),
      rule(e.jump("KUBE-SVC-A")),
    ]),
    chain(NAT, "KUBE-SVC-A", [
      rule(
        e.tcp(),
        e.dnet("10.244.0.0", 16, "neq"),
        e.daddr("10.96.0.10"),
        e.dport(80),
        e.jump("KUBE-MARK-MASQ"),
      ),
      rule(comment(), statistic(), e.jump("KUBE-SEP-1")),
      rule(comment(), e.jump("KUBE-SEP-2")),
    ]),
    sep("KUBE-SEP-1", "10.244.1.5"),
    sep("KUBE-SEP-2", "10.244.2.6"),
    chain(NAT, "KUBE-MARK-MASQ", [
      rule(e.counter(), e.target("MARK", markTargetInfo(0x4000, 0x4000), 2)),
    ]),
  ];
}

Deno.test("evaluate: kube-proxy iptables mode, a ClusterIP is translated to every endpoint", () => {
  const v = new FakeView(kubeIptables());
  const both = ["10.244.1.5:8080", "10.244.2.6:8080"];
  assert.deepEqual(show(evaluate(syn(CLIENT, "10.96.0.10:80"), v)), both);
  assert.deepEqual(show(evaluate(syn(CLIENT, "10.96.0.10:80", "output"), v)), both);
  assert.deepEqual(show(evaluate(syn("10.244.1.5:40000", "10.96.0.10:80"), v)), both);
});

Deno.test("evaluate: kube-proxy iptables mode, anything else is not proven", () => {
  const v = new FakeView(kubeIptables());
  assert.match(show(evaluate(syn(CLIENT, "10.96.0.10:81"), v)) as string, /without DNAT/);
  // a NodePort: only if the destination is local, which the agent does not know
  assert.match(show(evaluate(syn(CLIENT, "192.168.1.10:30080"), v)) as string, /without DNAT/);
});

const KP = table("ip", "kube-proxy");

/** kube-proxy nftables mode: the same Service, as `nft` shows it. */
function kubeNft(): { chains: NftChain[]; sets: NftSet[] } {
  const ep = (name: string, ip: string) =>
    chain(KP, name, [
      rule(e.saddr(ip), e.jump("mark-for-masquerade")),
      rule(e.tcp(), e.dnat(ip, 8080)),
    ]);
  const chains = [
    baseChain(KP, "nat-prerouting", "prerouting", -100, [rule(e.jump("services"))]),
    baseChain(KP, "nat-output", "output", -100, [rule(e.jump("services"))]),
    chain(KP, "services", [
      rule(e.daddrProtoPortVmap("service-ips")),
      rule(e.other("fib"), e.dnet("127.0.0.0", 8, "neq"), e.jump("nodeports")),
    ]),
    chain(KP, "nodeports", [rule(e.tcp(), e.dport(30080), e.goto("external-A"))]),
    chain(KP, "external-A", [rule(e.jump("mark-for-masquerade")), rule(e.goto("service-A"))]),
    chain(KP, "service-A", [
      rule(
        e.daddr("10.96.0.10"),
        e.tcp(),
        e.dport(80),
        e.dnet("10.244.0.0", 16, "neq"),
        e.jump("mark-for-masquerade"),
      ),
      rule(e.numgenVmap(2, "__map0")),
    ]),
    chain(KP, "mark-for-masquerade", [rule(e.orMark(0x4000))]),
    ep("endpoint-1", "10.244.1.5"),
    ep("endpoint-2", "10.244.2.6"),
  ];
  const sets = [
    set(KP, "service-ips", 12, [{
      key: concatKey(addr("10.96.0.10"), new Uint8Array([6]), new Uint8Array([0, 80])),
      verdict: { kind: "goto", chain: "service-A" },
    }], { data: "verdict", concat: true, fieldLens: [4, 1, 2] }),
    set(KP, "__map0", 4, [
      { key: u32Host(0), verdict: { kind: "goto", chain: "endpoint-1" } },
      { key: u32Host(1), verdict: { kind: "goto", chain: "endpoint-2" } },
    ], { data: "verdict", anonymous: true, constant: true }),
  ];
  return { chains, sets };
}

Deno.test("evaluate: kube-proxy nftables mode, a ClusterIP is translated to every endpoint", () => {
  const { chains, sets } = kubeNft();
  const v = new FakeView(chains, sets);
  const both = ["10.244.1.5:8080", "10.244.2.6:8080"];
  assert.deepEqual(show(evaluate(syn(CLIENT, "10.96.0.10:80"), v)), both);
  assert.deepEqual(show(evaluate(syn(CLIENT, "10.96.0.10:80", "output"), v)), both);
  assert.match(show(evaluate(syn(CLIENT, "10.96.0.10:81"), v)) as string, /without DNAT/);
  assert.match(show(evaluate(syn(CLIENT, "192.168.1.10:30080"), v)) as string, /without DNAT/);
});

Deno.test("evaluate: kube-proxy nftables mode, one endpoint missing from numgen's map is not proven", () => {
  const { chains, sets } = kubeNft();
  const v = new FakeView(chains, [sets[0]!, {
    ...sets[1]!,
    elements: sets[1]!.elements.slice(0, 1),
  }]);
  assert.match(show(evaluate(syn(CLIENT, "10.96.0.10:80"), v)) as string, /without DNAT/);
});

Deno.test("evaluate: kube-proxy nftables mode, a dnat map of address . port", () => {
  const pre = baseChain(KP, "nat-prerouting", "prerouting", -100, [rule(e.dnatMap("fwd"))]);
  const fwd = set(KP, "fwd", 8, [{
    key: concatKey(addr("10.96.0.10"), new Uint8Array([0, 80])),
    data: concatKey(addr("10.244.1.5"), new Uint8Array([0x1f, 0x90])),
  }], { data: 8, concat: true, fieldLens: [4, 2] });
  const v = new FakeView([pre], [fwd]);
  assert.deepEqual(show(evaluate(syn(CLIENT, "10.96.0.10:80"), v)), ["10.244.1.5:8080"]);
  assert.match(show(evaluate(syn(CLIENT, "10.96.0.11:80"), v)) as string, /without DNAT/);
});

/** Docker's published port 8080 → 172.17.0.2:80, in iptables-nft's ip nat table. */
function docker(): NftChain[] {
  return [
    baseChain(NAT, "PREROUTING", "prerouting", -100, [rule(addrtypeLocal(), e.jump("DOCKER"))]),
    baseChain(NAT, "OUTPUT", "output", -100, [
      rule(e.dnet("127.0.0.0", 8, "neq"), addrtypeLocal(), e.jump("DOCKER")),
    ]),
    chain(NAT, "DOCKER", [
      rule(e.iifname("docker0"), e.ret()),
      rule(
        e.iifname("docker0", "neq"),
        e.tcp(),
        e.match("tcp", tcpInfo({ dp: [8080, 8080] })),
        xtDnat("172.17.0.2", 80),
      ),
    ]),
  ];
}

Deno.test("evaluate: Docker's published port depends on addrtype and the interface: not proven", () => {
  const v = new FakeView(docker());
  assert.match(show(evaluate(syn(CLIENT, "192.168.1.10:8080"), v)) as string, /without DNAT/);
  assert.match(show(evaluate(syn(CLIENT, "192.168.1.10:8080", "output"), v)) as string, /without/);
});

Deno.test("evaluate: kube-proxy nftables beside Docker at equal priority: T holds both tools' targets", () => {
  const { chains, sets } = kubeNft();
  const d = docker().map((c) =>
    c.name === "DOCKER"
      ? chain(NAT, "DOCKER", [
        rule(e.tcp(), e.match("tcp", tcpInfo({ dp: [80, 80] })), xtDnat("172.17.0.2", 80)),
      ])
      : c
  );
  const v = new FakeView([...d, ...chains], sets);
  // either table may run first; Docker's chain DNATs port 80 when the destination is local
  assert.deepEqual(show(evaluate(syn(CLIENT, "10.96.0.10:80"), v)), [
    "10.244.1.5:8080",
    "10.244.2.6:8080",
    "172.17.0.2:80",
  ]);
});

Deno.test("evaluate: firewalld's port forward through zone dispatch (every branch reaches it)", () => {
  const fw = table("inet", "firewalld");
  const chains = [
    baseChain(fw, "nat_PREROUTING", "prerouting", -90, [rule(e.jump("nat_PREROUTING_ZONES"))]),
    chain(fw, "nat_PREROUTING_ZONES", [
      rule(e.iifname("eth0"), e.goto("nat_PRE_public")),
      rule(e.goto("nat_PRE_public")),
    ]),
    chain(fw, "nat_PRE_public", [
      rule(e.jump("nat_PRE_public_pre")),
      rule(e.jump("nat_PRE_public_allow")),
      rule(e.jump("nat_PRE_public_post")),
    ]),
    chain(fw, "nat_PRE_public_pre", []),
    chain(fw, "nat_PRE_public_allow", [
      rule(e.nfproto(2), e.tcp(), e.dport(80), e.dnat("10.0.0.5", 8080, 2)),
    ]),
    chain(fw, "nat_PRE_public_post", []),
  ];
  const v = new FakeView(chains);
  assert.deepEqual(show(evaluate(syn(CLIENT, "192.168.1.10:80"), v)), ["10.0.0.5:8080"]);
  assert.match(show(evaluate(syn("[fd00::2]:40000", "[fd00::10]:80"), v)) as string, /without/);
});

Deno.test("evaluate: ufw's before.rules DNAT, with and without an input interface", () => {
  const plain = baseChain(NAT, "PREROUTING", "prerouting", -100, [
    rule(e.tcp(), e.dport(80), e.counter(), xtDnat("10.0.0.5", 8080)),
  ]);
  assert.deepEqual(show(evaluate(syn(CLIENT, "192.168.1.10:80"), new FakeView([plain]))), [
    "10.0.0.5:8080",
  ]);
  const iif = baseChain(NAT, "PREROUTING", "prerouting", -100, [
    rule(e.iifname("eth0"), e.tcp(), e.dport(80), xtDnat("10.0.0.5", 8080)),
  ]);
  const filter = baseChain(table("ip", "filter"), "INPUT", "input", 0, [rule(e.drop())], {
    type: "filter",
  });
  const v = new FakeView([iif, filter]);
  assert.match(show(evaluate(syn(CLIENT, "192.168.1.10:80"), v)) as string, /without DNAT/);
});
