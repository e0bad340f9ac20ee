/**
 * NftRules, the lazy loader, on the captured kernel replies of
 * tests/fixtures/nft/rulesets.json (answered by request, ENOENT for anything
 * not captured) with small fake evaluators: it reads only what questions
 * reach, reuses it while the generation holds, reads again when the
 * generation moves, and says "unreadable" with the reason where it must.
 */
import assert from "node:assert/strict";
import { type Evaluate, NftRules, type NftRulesOptions } from "../../lib/nat/nft_reader.ts";
import { DEFAULT_BOUNDS } from "../../lib/nat/nft_fetch.ts";
import type { NatAnswer, NatQuestion, NftChain, RulesetView } from "../../lib/nat/ruleset.ts";
import type { HostNat } from "../../lib/nat/host_checks.ts";
import { type Exchange, ReplayTransport } from "../support/nft_replay.ts";

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/nft/rulesets.json", import.meta.url)),
) as { exchanges: Exchange[] };

const q4: NatQuestion = {
  family: "ipv4",
  src: new Uint8Array([10, 9, 0, 1]),
  dst: new Uint8Array([10, 96, 0, 10]),
  sport: 40000,
  dport: 80,
  zone: 0,
  hook: "prerouting",
};
const q6: NatQuestion = { ...q4, family: "ipv6", src: new Uint8Array(16), dst: new Uint8Array(16) };

/** Walks every chain and set reachable from the base chains; needs what is not read; lists chain names. */
const walker: Evaluate = (q: NatQuestion, view: RulesetView): NatAnswer => {
  const base = view.baseChains(q.family, q.hook);
  if (base === undefined) return { kind: "not_proven", reason: "no base chains" };
  const need = {
    chains: [] as NftChain[],
    sets: [] as { family: "ip"; table: string; name: string }[],
  };
  const names = new Set<string>();
  const stack = [...base];
  const go = (from: NftChain, name: string) => {
    const c = view.chain(from, name);
    if (c === undefined) need.chains.push({ ...from, name, rules: [] });
    else if (!names.has(`${c.table}/${c.name}`)) stack.push(c);
  };
  while (stack.length > 0) {
    const c = stack.pop()!;
    names.add(`${c.table}/${c.name}`);
    for (const r of c.rules) {
      for (const e of r.exprs) {
        if (e.op === "verdict" && (e.verdict.kind === "jump" || e.verdict.kind === "goto")) {
          go(c, e.verdict.chain);
        }
        if (e.op !== "lookup") continue;
        const s = view.set(c, e.set);
        if (s === undefined) need.sets.push({ family: "ip", table: c.table, name: e.set });
        for (const el of s?.elements ?? []) {
          if (el.verdict?.kind === "jump" || el.verdict?.kind === "goto") go(c, el.verdict.chain);
        }
      }
    }
  }
  if (need.chains.length + need.sets.length > 0) return { kind: "need", ...need };
  return { kind: "not_proven", reason: [...names].sort().join(" ") };
};

const noHost = (): Promise<HostNat> =>
  Promise.resolve({ legacyNat: { ipv4: false, ipv6: false }, ipvs: [] });

const GETGEN = (10 << 8) | 16;
const GETRULE = (10 << 8) | 7;
const typeOf = (req: Uint8Array) => new DataView(req.buffer, req.byteOffset).getUint16(4, true);
/** `table/chain` of a rule dump request (its two string attributes). */
const chainOf = (req: Uint8Array) =>
  [...new TextDecoder().decode(req.subarray(20)).matchAll(/[\w-]{2,}/g)].map((m) => m[0]).join("/");

function rules(
  options: Partial<NftRulesOptions> = {},
  rewrite?: (req: Uint8Array, reply: Uint8Array) => void,
) {
  const t = new ReplayTransport(fixture.exchanges, {
    byRequest: true,
    ...(rewrite ? { rewrite } : {}),
  });
  const r = new NftRules({ evaluate: walker, open: () => t, hostNat: noHost, ...options });
  return { r, t };
}

Deno.test("NftRules.answer: reads only the chains and sets the question reaches", async () => {
  const { r, t } = rules();
  const [a] = await r.answer([q4]);
  assert.equal(a?.kind, "not_proven");
  const reached = a?.kind === "not_proven" ? a.reason.split(" ") : [];
  assert.deepEqual(reached, [
    "fw/pre",
    "kp/ep1",
    "kp/ep2",
    "kp/pre",
    "kp/raw",
    "kp/services",
    "kp/svc1",
    "nat/KUBE-MARK-MASQ",
    "nat/KUBE-NODEPORTS",
    "nat/KUBE-SEP-1",
    "nat/KUBE-SEP-2",
    "nat/KUBE-SERVICES",
    "nat/KUBE-SVC-AAA",
    "nat/PREROUTING",
  ]);
  const ruleDumps = t.sent.filter((s) => typeOf(s) === GETRULE).map(chainOf);
  assert.ok(!ruleDumps.includes("nat/OUTPUT") && !ruleDumps.includes("kp/out"), `${ruleDumps}`);
  assert.ok(ruleDumps.includes("nat/PREROUTING"), `${ruleDumps}`);
  assert.equal(new Set(ruleDumps).size, ruleDumps.length, "no chain read twice");
  assert.ok(r.lastRead.rules > 10 && r.lastRead.elements >= 3, JSON.stringify(r.lastRead));
});

Deno.test("NftRules.answer: the next batch at the same generation reads only the generation", async () => {
  const { r, t } = rules();
  await r.answer([q4]);
  const before = t.sent.length;
  const [a] = await r.answer([q4]);
  assert.equal(a?.kind, "not_proven");
  assert.deepEqual(t.sent.slice(before).map(typeOf), [GETGEN, GETGEN]);
  assert.equal(r.lastRead.reused, true);
});

Deno.test("NftRules.answer: no questions, no socket opened, no request sent, no host check", async () => {
  const t = new ReplayTransport(fixture.exchanges, { byRequest: true });
  let opened = 0;
  let hostReads = 0;
  const r = new NftRules({
    evaluate: walker,
    open: () => (opened++, t),
    hostNat: () => (hostReads++, noHost()),
  });
  assert.deepEqual(await r.answer([]), []);
  assert.deepEqual([opened, hostReads, t.sent.length], [0, 0, 0]);
  await r.answer([q4]);
  assert.deepEqual([opened, hostReads], [1, 1], "the same counters see a batch with a question");
  assert.ok(t.sent.length > 0);
});

/** Rewrites NFTA_GEN_ID of every NEWGEN reply to `next()`. */
function generations(next: () => number) {
  return (req: Uint8Array, reply: Uint8Array) => {
    if (typeOf(req) !== GETGEN) return;
    const v = new DataView(reply.buffer);
    if (v.getUint16(4, true) === ((10 << 8) | 15)) v.setUint32(24, next(), false);
  };
}

Deno.test("NftRules.answer: a generation change during the read is read again; twice is unreadable", async () => {
  let n = 0;
  const once = rules({}, generations(() => (n++ === 0 ? 5 : 6)));
  const [a] = await once.r.answer([q4]);
  assert.equal(a?.kind, "not_proven");
  assert.equal(once.r.lastRead.attempts, 2);
  assert.equal(once.r.lastRead.generation, 6);
  let m = 0;
  const always = rules({}, generations(() => m++));
  const [b] = await always.r.answer([q4]);
  assert.equal(b?.kind, "unreadable");
  assert.match(b?.kind === "unreadable" ? b.reason : "", /changed during the read twice/);
});

const GETSET = (10 << 8) | 10;
const GETSETELEM = (10 << 8) | 13;

Deno.test("NftRules.answer: a new generation reads the anonymous constant map's header, not its elements", async () => {
  let n = 0;
  const { r, t } = rules({}, generations(() => 7 + Math.floor(n++ / 2)));
  const [a] = await r.answer([q4]);
  const first = t.sent.map((s) => [typeOf(s), chainOf(s)] as const);
  assert.ok(first.some(([ty, c]) => ty === GETSETELEM && c === "kp/__map0"), `${first}`);
  assert.equal(r.lastRead.reusedSets, 0);
  const before = t.sent.length;
  const [b] = await r.answer([q4]);
  assert.equal(r.lastRead.reused, false, "another generation");
  assert.deepEqual(b, a);
  const again = t.sent.slice(before).map((s) => [typeOf(s), chainOf(s)] as const);
  assert.ok(again.some(([ty, c]) => ty === GETSET && c === "kp/__map0"), `${again}`);
  assert.ok(!again.some(([ty, c]) => ty === GETSETELEM && c === "kp/__map0"), `${again}`);
  assert.ok(again.some(([ty, c]) => ty === GETSETELEM && c === "kp/service-ips"), "named: read");
  assert.equal(r.lastRead.reusedSets, 1);
});

Deno.test("NftRules.answer: a legacy nat table makes its family unreadable only", async () => {
  const { r } = rules({
    hostNat: () => Promise.resolve({ legacyNat: { ipv4: true, ipv6: false }, ipvs: [] }),
  });
  const [a, b] = await r.answer([q4, q6]);
  assert.deepEqual(a, {
    kind: "unreadable",
    reason: "a legacy iptables nat table exists (ip_tables_names)",
  });
  assert.equal(b?.kind, "not_proven");
});

Deno.test("NftRules.answer: an IPVS service for the destination makes it unreadable", async () => {
  const ipvs = [{ addr: q4.dst, port: 80 }];
  const { r } = rules({
    hostNat: () => Promise.resolve({ legacyNat: { ipv4: false, ipv6: false }, ipvs }),
  });
  const [a, b] = await r.answer([q4, { ...q4, dport: 81 }]);
  assert.equal(a?.kind, "unreadable");
  assert.equal(b?.kind, "not_proven");
});

Deno.test("NftRules.answer: past the rule bound the answer is unreadable, with the bound", async () => {
  const { r } = rules({ bounds: { ...DEFAULT_BOUNDS, rules: 5 } });
  const [a] = await r.answer([q4]);
  assert.deepEqual(a, {
    kind: "unreadable",
    reason: "the rules are too large to read: more than 5 rules",
  });
});

Deno.test("NftRules.answer: a set that does not exist is unreadable after a second read", async () => {
  const evaluate: Evaluate = (_q, view) =>
    view.set({ family: "ip", table: "nat" }, "NOPE") === undefined
      ? { kind: "need", chains: [], sets: [{ family: "ip", table: "nat", name: "NOPE" }] }
      : { kind: "not_proven", reason: "found" };
  const { r } = rules({ evaluate });
  const [a] = await r.answer([q4]);
  assert.equal(a?.kind, "unreadable");
  assert.match(a?.kind === "unreadable" ? a.reason : "", /set ip nat NOPE: none/);
});

Deno.test("NftRules.answer: an evaluator that answers over a gap is asked again once it is read", async () => {
  let calls = 0;
  const evaluate: Evaluate = (_q, view) => {
    calls++;
    const c = view.chain({ family: "ip", table: "nat" }, "KUBE-SEP-2");
    return c === undefined
      ? { kind: "not_proven", reason: "gap" }
      : { kind: "translated", targets: [] };
  };
  const { r } = rules({ evaluate });
  assert.deepEqual(await r.answer([q4]), [{ kind: "translated", targets: [] }]);
  assert.equal(calls, 2);
});

Deno.test("NftRules.answer: a failing evaluator or one that needs forever is unreadable", async () => {
  const { r } = rules({
    evaluate: () => {
      throw new Error("boom");
    },
  });
  assert.deepEqual(await r.answer([q4]), [{
    kind: "unreadable",
    reason: "the evaluator failed: boom",
  }]);
  const loop = rules({
    evaluate: () => ({
      kind: "need",
      chains: [{ family: "ip", table: "kp", name: "ep1" }],
      sets: [],
    }),
  });
  const [a] = await loop.r.answer([q4]);
  assert.deepEqual(a, { kind: "unreadable", reason: "the evaluator needs what was read" });
});
