import assert from "node:assert/strict";
import { StaleTranslationRule } from "../../lib/rules/stale_translation.ts";
import type { Candidate } from "../../lib/model/snapshot.ts";
import type { NatVerdict } from "../../lib/nat/verdicts.ts";
import type { RuleInput } from "../../lib/rules/rule.ts";

const dead = { addr: "10.244.1.5", port: 8080 };
const at = (a: number[]) => new Uint8Array(a);
const live = (port = 8080): NatVerdict => ({
  kind: "translated",
  hooks: ["prerouting"],
  targets: [{
    addrMin: at([10, 244, 2, 9]),
    addrMax: at([10, 244, 2, 9]),
    portMin: port,
    portMax: port,
  }],
});

/** A translated candidate `ageS` seconds old by the kernel's timeout (120 s SYN_SENT). */
function entry(
  o: { sport?: number; ageS?: number; translated?: typeof dead | undefined } = {},
): Candidate {
  const c: Candidate = {
    family: "ipv4",
    src: "192.0.2.7",
    dst: "198.51.100.80",
    sport: o.sport ?? 40000,
    dport: 80,
    zone: 0,
    timeout: 119 - (o.ageS ?? 5),
    seenFrom: 1000,
    seenTo: 1001,
    id: 7,
  };
  const t = "translated" in o ? o.translated : dead;
  return t === undefined ? c : { ...c, translated: t };
}

function input(cs: Candidate[], nat?: (c: Candidate) => NatVerdict | undefined): RuleInput {
  return {
    snapshot: {
      candidates: cs,
      scanned: cs.length,
      malformed: 0,
      startedAt: 1000,
      finishedAt: 1002,
    },
    track: { stale: [], renewals: 0, tracked: cs.length, forgotten: 0 },
    sameSince: () => undefined,
    ...(nat ? { nat } : {}),
  };
}

const rule = () => new StaleTranslationRule({ afterMs: 2000, synSentTimeoutS: 120 });

Deno.test("StaleTranslationRule deletes an entry translated to X when the rules now translate to T without X", () => {
  const c = entry();
  const [d, ...rest] = rule().decide(input([c], () => live()));
  assert.equal(rest.length, 0);
  assert.equal(d?.rule, "stale_translation");
  assert.equal(d?.translatedTo, "10.244.1.5:8080");
  assert.equal(d?.id, 7);
  assert.match(d!.reason, /10\.244\.2\.9:8080/);
});

Deno.test("StaleTranslationRule keeps an entry whose translation the rules may still pick (X in T)", () => {
  const same: NatVerdict = {
    kind: "translated",
    hooks: ["prerouting"],
    targets: [
      { addrMin: at([10, 244, 2, 9]), addrMax: at([10, 244, 2, 9]), portMin: 8080, portMax: 8080 },
      {
        addrMin: at([10, 244, 1, 0]),
        addrMax: at([10, 244, 1, 255]),
        portMin: 8000,
        portMax: 8090,
      },
    ],
  };
  assert.deepEqual(rule().decide(input([entry()], () => same)), []);
  // Same address, another port: outside T.
  assert.equal(rule().decide(input([entry()], () => live(9090))).length, 1);
});

Deno.test("StaleTranslationRule keeps what the rules do not prove, and un-NATed or young entries", () => {
  const keeps: string[] = [];
  const asked = (nat?: NatVerdict) => {
    const i = input([entry()], () => nat);
    return rule().decide({ ...i, keep: (_c, why) => keeps.push(why) });
  };
  assert.deepEqual(asked({ kind: "not_proven", reason: "a statistic match both ways" }), []);
  assert.deepEqual(asked({ kind: "unreadable", reason: "legacy iptables nat" }), []);
  assert.deepEqual(asked(undefined), []);
  assert.deepEqual(rule().decide(input([entry({ translated: undefined })], () => live())), []);
  assert.deepEqual(rule().decide(input([entry({ ageS: 1 })], () => live())), []);
  assert.equal(keeps.length, 3);
  assert.match(keeps[1]!, /legacy iptables nat/);
});

Deno.test("StaleTranslationRule.natAsk names only translated candidates old enough", () => {
  const cs = [
    entry({ sport: 1 }),
    entry({ sport: 2, ageS: 1 }),
    entry({ sport: 3, translated: undefined }),
  ];
  assert.deepEqual(rule().natAsk(input(cs)).map((c) => c.sport), [1]);
});
