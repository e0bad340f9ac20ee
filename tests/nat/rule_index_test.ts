import assert from "node:assert/strict";
import { be16 } from "../../lib/nat/bits.ts";
import { evaluate } from "../../lib/nat/evaluate.ts";
import { nextRule } from "../../lib/nat/rule_index.ts";
import type { NatAnswer } from "../../lib/nat/ruleset.ts";
import { formatTarget } from "../../lib/nat/targets.ts";
import { addr, baseChain, chain, e, FakeView, rule, syn, table } from "../support/nft_builder.ts";

const NAT = table("ip", "nat");

function show(a: NatAnswer): string[] | string {
  if (a.kind === "translated") return a.targets.map(formatTarget).sort();
  return a.kind === "not_proven" ? `not_proven: ${a.reason}` : "need";
}

/** KUBE-SERVICES-like: one rule per Service address, `n` of them, plus a last unguarded rule. */
function services(n: number) {
  const rules = Array.from({ length: n }, (_, i) =>
    rule(
      e.tcp(),
      e.daddr(`10.96.${i >> 8}.${i & 255}`),
      e.match("comment", new Uint8Array(256)),
      e.dport(80),
      e.dnat(`10.244.${i >> 8}.${i & 255}`, 8080),
    ));
  rules.push(rule(e.tcp(), e.dport(8443), e.dnat("10.1.1.1", 443)));
  return [
    baseChain(NAT, "PREROUTING", "prerouting", -100, [rule(e.jump("SERVICES"))]),
    chain(NAT, "SERVICES", rules),
  ];
}

Deno.test("nextRule: picks the rules whose destination test may match, and unguarded ones", () => {
  const [, svc] = services(40);
  assert.equal(nextRule(svc!, 0, addr("10.96.0.17")), 17);
  assert.equal(nextRule(svc!, 18, addr("10.96.0.17")), 40);
  assert.equal(nextRule(svc!, 0, addr("192.168.0.1")), 40);
  assert.equal(nextRule(svc!, 41, addr("10.96.0.17")), 41);
});

Deno.test("evaluate: a long chain gives the same answers through the index", () => {
  const v = new FakeView(services(300));
  assert.deepEqual(show(evaluate(syn("10.0.0.2:40000", "10.96.1.7:80"), v)), ["10.244.1.7:8080"]);
  assert.deepEqual(show(evaluate(syn("10.0.0.2:40000", "10.96.1.7:8443"), v)), ["10.1.1.1:443"]);
  assert.match(show(evaluate(syn("10.0.0.2:40000", "10.96.1.7:81"), v)) as string, /without/);
  assert.deepEqual(show(evaluate(syn("10.0.0.2:40000", "10.96.9.9:8443"), v)), ["10.1.1.1:443"]);
});

Deno.test("evaluate: registers a skipped rule would have loaded are not relied on", () => {
  // rule 2 (skipped: another destination) loads the port into word 1 before its test, and
  // the kernel runs rule 3 with that value; the evaluator must not keep rule 1's 81 there
  const c = baseChain(NAT, "PREROUTING", "prerouting", -100, [
    rule([{ op: "immediate", dreg: 1, data: be16(81) }]),
    rule(
      [{ op: "payload", base: "transport", offset: 2, len: 2, dreg: 1 }],
      e.daddr("10.1.1.1"),
    ),
    rule([{ op: "cmp", sreg: 1, cmp: "neq", data: be16(81) }], e.ret()),
    rule(e.dnat("10.244.1.5", 8080)),
  ]);
  assert.match(
    show(evaluate(syn("10.0.0.2:40000", "10.96.0.10:80"), new FakeView([c]))) as string,
    /without/,
  );
});

Deno.test("nextRule: the first rule at or after ri that is unguarded or guarded by dst (random chains)", () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let round = 0; round < 200; round++) {
    const guards = Array.from({ length: 16 + rand(40) }, () => rand(4));
    const svc = chain(
      NAT,
      "S",
      guards.map((g) => g === 0 ? rule(e.dport(80)) : rule(e.daddr(`10.96.0.${g}`), e.dport(80))),
    );
    for (let k = 0; k < 10; k++) {
      const d = 1 + rand(4);
      const ri = rand(guards.length + 2);
      let want = guards.findIndex((g, i) => i >= ri && (g === 0 || g === d));
      if (want < 0) want = guards.length;
      const got = nextRule(svc, ri, addr(`10.96.0.${d}`));
      assert.equal(got, want, `round ${round}, dst .${d}, from ${ri}`);
    }
  }
});
