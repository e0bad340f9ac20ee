import assert from "node:assert/strict";
import { u32Host } from "../../lib/nat/bits.ts";
import { DEFAULT_LIMITS, evaluate } from "../../lib/nat/evaluate.ts";
import type { NatAnswer, NftChain, NftSet } from "../../lib/nat/ruleset.ts";
import { formatTarget } from "../../lib/nat/targets.ts";
import {
  addr,
  baseChain,
  chain,
  e,
  FakeView,
  rule,
  set,
  syn,
  table,
} from "../support/nft_builder.ts";

const NAT = table("ip", "nat");
const CLIENT = "10.0.0.2:40000";
const VIP = "10.96.0.10:80";

function ask(chains: NftChain[], q = syn(CLIENT, VIP), sets: NftSet[] = []): NatAnswer {
  return evaluate(q, new FakeView(chains, sets));
}

/** The answer's targets as text, or its kind and reason. */
function show(a: NatAnswer): string[] | string {
  if (a.kind === "translated") return a.targets.map(formatTarget).sort();
  return a.kind === "not_proven" ? `not_proven: ${a.reason}` : `need`;
}

function pre(rules: ReturnType<typeof rule>[], priority = -100, name = "PREROUTING"): NftChain {
  return baseChain(NAT, name, "prerouting", priority, rules);
}

Deno.test("evaluate: a plain DNAT of the destination and port is translated to its target", () => {
  const c = pre([rule(e.tcp(), e.daddr("10.96.0.10"), e.dport(80), e.dnat("10.244.1.5", 8080))]);
  assert.deepEqual(show(ask([c])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: a destination no rule translates is not proven", () => {
  const c = pre([rule(e.tcp(), e.daddr("10.96.0.10"), e.dport(80), e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([c], syn(CLIENT, "10.96.0.10:81"))) as string, /without DNAT/);
  assert.match(show(ask([c], syn(CLIENT, "10.96.0.11:80"))) as string, /without DNAT/);
});

Deno.test("evaluate: DNAT without a port keeps the SYN's destination port", () => {
  const c = pre([rule(e.daddr("10.96.0.10"), e.dnat("10.244.1.5"))]);
  assert.deepEqual(show(ask([c])), ["10.244.1.5:80"]);
  assert.deepEqual(show(ask([c], syn(CLIENT, "10.96.0.10:443"))), ["10.244.1.5:443"]);
});

Deno.test("evaluate: an address and port range is taken whole", () => {
  const c = pre([rule(e.dnatRange("10.0.0.2", "10.0.0.5", 8000, 8010))]);
  assert.deepEqual(show(ask([c])), ["10.0.0.2-10.0.0.5:8000-8010"]);
});

Deno.test("evaluate: a negated test decides the other way", () => {
  const c = pre([rule(e.daddr("10.96.0.10", "neq"), e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([c])) as string, /without DNAT/);
  assert.deepEqual(show(ask([c], syn(CLIENT, "10.96.0.11:80"))), ["10.244.1.5:8080"]);
  const r = pre([rule(e.dportRange(1, 1024, "neq"), e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([r])) as string, /without DNAT/);
  assert.deepEqual(show(ask([r], syn(CLIENT, "10.96.0.10:2000"))), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: an identity DNAT (the target holds the original) is not proven", () => {
  const same = pre([rule(e.dnat("10.96.0.10", 80))]);
  assert.match(show(ask([same])) as string, /holds the original destination/);
  const kept = pre([rule(e.dnat("10.96.0.10"))]);
  assert.match(show(ask([kept])) as string, /holds the original destination/);
  const range = pre([rule(e.dnatRange("10.96.0.9", "10.96.0.11", 79, 81))]);
  assert.match(show(ask([range])) as string, /holds the original destination/);
  const otherPort = pre([rule(e.dnat("10.96.0.10", 8080))]);
  assert.deepEqual(show(ask([otherPort])), ["10.96.0.10:8080"]);
});

Deno.test("evaluate: jump returns to the next rule, goto does not", () => {
  const a = chain(NAT, "A", [rule(e.counter())]);
  const viaJump = pre([rule(e.jump("A")), rule(e.dnat("10.244.1.5", 8080))]);
  assert.deepEqual(show(ask([viaJump, a])), ["10.244.1.5:8080"]);
  const viaGoto = pre([rule(e.goto("A")), rule(e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([viaGoto, a])) as string, /without DNAT/);
  // a return in a chain reached by goto from a jumped-to chain goes back to the jumper
  const b = chain(NAT, "B", [rule(e.goto("C"))]);
  const c = chain(NAT, "C", [rule(e.ret()), rule(e.dnat("10.9.9.9", 1))]);
  const top = pre([rule(e.jump("B")), rule(e.dnat("10.244.1.5", 8080))]);
  assert.deepEqual(show(ask([top, b, c])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: return in the base chain applies its policy", () => {
  const c = pre([rule(e.ret()), rule(e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([c])) as string, /without DNAT/);
  const dropPolicy = baseChain(NAT, "P", "prerouting", -100, [rule(e.daddr("1.1.1.1"))], {
    policy: "drop",
  });
  assert.match(show(ask([dropPolicy])) as string, /policy drop/);
});

Deno.test("evaluate: a mark test is taken both ways (the mark is unknown)", () => {
  const skip = pre([rule(e.mark(0x4000, 0x4000), e.ret()), rule(e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([skip])) as string, /without DNAT/);
  const only = pre([rule(e.mark(0x4000, 0x4000), e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([only])) as string, /without DNAT/);
  const unless = pre([rule(e.mark(0x4000, 0x4000, "neq"), e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([unless])) as string, /without DNAT/);
});

Deno.test("evaluate: a mark set earlier on the same path is known", () => {
  const c = pre([
    rule(e.setMark(0x4000)),
    rule(e.mark(0x4000, 0x4000, "neq"), e.ret()),
    rule(e.dnat("10.244.1.5", 8080)),
  ]);
  assert.deepEqual(show(ask([c])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: interfaces and socket owners are unknown", () => {
  const iif = pre([rule(e.iifname("docker0", "neq"), e.dnat("172.17.0.2", 80))]);
  assert.match(show(ask([iif])) as string, /without DNAT/);
  const out = baseChain(NAT, "OUTPUT", "output", -100, [
    rule(e.skuid(1000), e.ret()),
    rule(e.tcp(), e.dport(80), e.redirect(3128)),
  ]);
  assert.match(show(ask([out], syn(CLIENT, VIP, "output"))) as string, /without DNAT/);
  const owner = baseChain(NAT, "OUTPUT", "output", -100, [
    rule(e.match("owner", new Uint8Array(20), 1), e.ret()),
    rule(e.redirect(3128)),
  ]);
  assert.match(show(ask([owner], syn(CLIENT, VIP, "output"))) as string, /without DNAT/);
});

Deno.test("evaluate: REDIRECT goes to loopback at output and anywhere local at prerouting", () => {
  const out = baseChain(NAT, "OUTPUT", "output", -100, [rule(e.redirect(3128))]);
  assert.deepEqual(show(ask([out], syn(CLIENT, VIP, "output"))), ["127.0.0.1:3128"]);
  const pr = pre([rule(e.redirect(3128))]);
  assert.deepEqual(show(ask([pr])), ["0.0.0.0-255.255.255.255:3128"]);
  // the port kept: the local address may be the destination itself
  assert.match(show(ask([pre([rule(e.redirect())])])) as string, /holds the original/);
  const lo = baseChain(NAT, "OUTPUT", "output", -100, [rule(e.redirect())]);
  assert.deepEqual(show(ask([lo], syn(CLIENT, VIP, "output"))), ["127.0.0.1:80"]);
  assert.match(show(ask([lo], syn(CLIENT, "127.0.0.1:80", "output"))) as string, /original/);
});

Deno.test("evaluate: a drop or an unknown target on any path is not proven", () => {
  const drop = pre([rule(e.mark(1), e.drop()), rule(e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([drop])) as string, /drop in chain nat\/PREROUTING/);
  const target = pre([rule(e.target("TPROXY")), rule(e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([target])) as string, /target TPROXY/);
  const write = pre([rule([{ op: "payload_set", base: "network", offset: 16, len: 4, sreg: 0 }])]);
  assert.match(show(ask([write])) as string, /packet write/);
  const unknown = pre([rule(e.other("frobnicate")), rule(e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([unknown])) as string, /expression frobnicate/);
});

Deno.test("evaluate: a test expression the evaluator does not model is taken both ways", () => {
  const c = pre([rule(e.other("fib"), e.ret()), rule(e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([c])) as string, /without DNAT/);
  const ok = pre([rule(e.other("limit"), e.dnat("10.244.1.5", 8080)), rule(e.dnat("10.9.9.9"))]);
  assert.deepEqual(show(ask([ok])), ["10.244.1.5:8080", "10.9.9.9:80"]);
});

Deno.test("evaluate: ACCEPT ends only its own nat chain", () => {
  const first = pre([rule(e.accept())], -150, "first");
  const second = pre([rule(e.dnat("10.244.1.5", 8080))], -100, "second");
  assert.deepEqual(show(ask([first, second])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: the first binding ends nat at the hook", () => {
  const first = pre([rule(e.dnat("10.244.1.5", 8080))], -150, "first");
  const second = pre([rule(e.drop())], -100, "second");
  assert.deepEqual(show(ask([first, second])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: chains of equal priority are taken in every order, whatever the listing", () => {
  const a = pre([rule(e.dnat("10.244.1.5", 8080))], -100, "a");
  const b = pre([rule(e.tcp(), e.drop())], -100, "b");
  assert.match(show(ask([a, b])) as string, /drop in chain nat\/b/);
  assert.match(show(ask([b, a])) as string, /drop in chain nat\/b/);
  const c = pre([rule(e.dnat("10.244.2.6", 8080))], -100, "c");
  assert.deepEqual(show(ask([a, c])), ["10.244.1.5:8080", "10.244.2.6:8080"]);
  assert.deepEqual(show(ask([c, a])), ["10.244.1.5:8080", "10.244.2.6:8080"]);
  // distinct priorities: one order only
  const late = pre([rule(e.tcp(), e.drop())], -90, "late");
  assert.deepEqual(show(ask([late, a])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: a DNAT for the other family in an inet table does nothing", () => {
  const inet = table("inet", "kube");
  const c = baseChain(inet, "pre", "prerouting", -100, [
    rule(e.dnat("fd00::5", 8080, 10)),
    rule(e.dnat("10.244.1.5", 8080, 2)),
  ]);
  assert.deepEqual(show(ask([c])), ["10.244.1.5:8080"]);
  const v6 = syn("[fd00::2]:40000", "[fd00::10]:80");
  assert.deepEqual(show(ask([c], v6)), ["[fd00:0:0:0:0:0:0:5]:8080"]);
});

Deno.test("evaluate: a drop, queue or zone set in a chain before nat is not proven", () => {
  const dnat = pre([rule(e.dnat("10.244.1.5", 8080))]);
  const raw = baseChain(table("ip", "raw"), "PREROUTING", "prerouting", -300, [
    rule(e.saddr("10.0.0.2"), e.drop()),
  ], { type: "filter" });
  assert.match(show(ask([dnat, raw])) as string, /before nat: drop in chain raw/);
  assert.deepEqual(show(ask([dnat, raw], syn("10.0.0.3:40000", VIP))), ["10.244.1.5:8080"]);
  const zone = baseChain(table("ip", "raw"), "PREROUTING", "prerouting", -300, [
    rule([{ op: "immediate", dreg: 0, data: new Uint8Array([3, 0]) }], [{
      op: "ct_set",
      key: 17,
      sreg: 0,
    }]),
  ], { type: "filter" });
  assert.match(show(ask([dnat, zone])) as string, /ct key 17 set/);
  const ct = baseChain(table("ip", "raw"), "PREROUTING", "prerouting", -300, [
    rule(e.target("CT", new Uint8Array(64), 2)),
  ], { type: "filter" });
  assert.match(show(ask([dnat, ct])) as string, /target CT/);
  // after the nat core's place in the hook (−100): not walked, even above a nat chain at −150
  const early = pre([rule(e.dnat("10.244.1.5", 8080))], -150, "early");
  const mid = baseChain(table("ip", "mangle"), "PREROUTING", "prerouting", -90, [rule(e.drop())], {
    type: "filter",
  });
  assert.deepEqual(show(ask([early, mid])), ["10.244.1.5:8080"]);
  const at = baseChain(table("ip", "mangle"), "PREROUTING", "prerouting", -100, [rule(e.drop())], {
    type: "filter",
  });
  assert.match(show(ask([early, at])) as string, /before nat: drop/);
  const late = baseChain(table("ip", "filter"), "PREROUTING", "prerouting", 0, [rule(e.drop())], {
    type: "filter",
  });
  assert.deepEqual(show(ask([dnat, late])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: a mark set before nat stays unknown to the nat chains", () => {
  const mangle = baseChain(table("ip", "mangle"), "PREROUTING", "prerouting", -150, [
    rule(e.setMark(0x4000)),
  ], { type: "filter" });
  const nat = pre([rule(e.mark(0x4000), e.ret()), rule(e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([mangle, nat])) as string, /without DNAT/);
  const natOnly = pre([rule(e.mark(0x4000, 0xffffffff, "neq"), e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([natOnly])) as string, /without DNAT/);
});

Deno.test("evaluate: a chain or set not read yet is asked for, then answered", () => {
  const svc = chain(NAT, "SVC", [rule(e.daddrIn("vips"), e.dnat("10.244.1.5", 8080))]);
  const c = pre([rule(e.jump("SVC"))]);
  const vips = set(NAT, "vips", 4, [{ key: addr("10.96.0.10") }]);
  const view = new FakeView([c, svc], [vips]);
  view.hidden.add("ip/nat/SVC");
  const a = evaluate(syn(CLIENT, VIP), view);
  assert.deepEqual(a, {
    kind: "need",
    chains: [{ family: "ip", table: "nat", name: "SVC" }],
    sets: [],
  });
  view.hidden.clear();
  view.hidden.add("ip/nat/vips");
  const b = evaluate(syn(CLIENT, VIP), view);
  assert.deepEqual(b, {
    kind: "need",
    chains: [],
    sets: [{ family: "ip", table: "nat", name: "vips" }],
  });
  view.hidden.clear();
  assert.deepEqual(show(evaluate(syn(CLIENT, VIP), view)), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: a set updated from the packet path is taken both ways", () => {
  const c = pre([rule(e.daddrIn("seen"), e.ret()), rule(e.dnat("10.244.1.5", 8080))]);
  const stat = set(NAT, "seen", 4, [{ key: addr("10.96.0.99") }]);
  assert.deepEqual(show(ask([c], syn(CLIENT, VIP), [stat])), ["10.244.1.5:8080"]);
  const dyn = set(NAT, "seen", 4, [{ key: addr("10.96.0.99") }], { dynamic: true });
  assert.match(show(ask([c], syn(CLIENT, VIP), [dyn])) as string, /without DNAT/);
  const timeout = set(NAT, "seen", 4, [{ key: addr("10.96.0.10") }], { timeout: true });
  const inSet = pre([rule(e.daddrIn("seen"), e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([inSet], syn(CLIENT, VIP), [timeout])) as string, /without DNAT/);
  const neg = pre([rule(e.daddrIn("seen", true), e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([neg], syn(CLIENT, VIP), [stat, dyn].slice(1))) as string, /without/);
  assert.deepEqual(show(ask([neg], syn(CLIENT, VIP), [stat])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: jumps deeper than the kernel's stack are not proven", () => {
  const chains = Array.from(
    { length: 18 },
    (_, i) => chain(NAT, `c${i}`, [rule(e.jump(`c${i + 1}`))]),
  );
  chains.push(chain(NAT, "c18", [rule(e.dnat("10.244.1.5", 8080))]));
  assert.match(show(ask([pre([rule(e.jump("c0"))]), ...chains])) as string, /deeper than 16/);
  const gotos = Array.from(
    { length: 18 },
    (_, i) => chain(NAT, `g${i}`, [rule(e.goto(`g${i + 1}`))]),
  );
  gotos.push(chain(NAT, "g18", [rule(e.dnat("10.244.1.5", 8080))]));
  assert.deepEqual(show(ask([pre([rule(e.goto("g0"))]), ...gotos])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: past the step bound the answer is not proven", () => {
  const c = pre([rule(e.dnat("10.244.1.5", 8080))]);
  const many = pre(Array.from({ length: 50 }, () => rule(e.counter())), -200, "counters");
  const a = evaluate(syn(CLIENT, VIP), new FakeView([many, c]), {
    ...DEFAULT_LIMITS,
    maxSteps: 40,
  });
  assert.match(show(a) as string, /bound: more than 40 steps/);
  assert.deepEqual(show(ask([many, c])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: no nat chain at the hook is not proven", () => {
  assert.match(show(ask([])) as string, /no nat chain/);
});

Deno.test("evaluate: before conntrack (priority ≤ -200) ct state is unknown", () => {
  const dnat = pre([rule(e.dnat("10.244.1.5", 8080))]);
  const dropNotNew = (priority: number) =>
    baseChain(table("ip", "raw"), "PREROUTING", "prerouting", priority, [
      rule([{ op: "ct", key: 0, dreg: 0 }], [{
        op: "cmp",
        sreg: 0,
        cmp: "neq",
        data: u32Host(8),
      }], e.drop()),
    ], { type: "filter" });
  assert.match(show(ask([dnat, dropNotNew(-300)])) as string, /before nat: drop/);
  assert.deepEqual(show(ask([dnat, dropNotNew(-150)])), ["10.244.1.5:8080"]);
});

Deno.test("evaluate: the ethertype (meta protocol) is known at prerouting only", () => {
  const proto = [{ op: "meta" as const, key: 1, dreg: 0 }, {
    op: "cmp" as const,
    sreg: 0,
    cmp: "eq" as const,
    data: new Uint8Array([8, 0]),
  }];
  const p = pre([rule(proto, e.dnat("10.244.1.5", 8080))]);
  assert.deepEqual(show(ask([p])), ["10.244.1.5:8080"]);
  const o = baseChain(NAT, "OUTPUT", "output", -100, [rule(proto, e.dnat("10.244.1.5", 8080))]);
  assert.match(show(ask([o], syn(CLIENT, VIP, "output"))) as string, /without DNAT/);
});
