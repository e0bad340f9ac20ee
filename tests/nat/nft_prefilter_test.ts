/**
 * The prefilter that stops decoding a rule early: a property test against a
 * small register machine of its own (random leading expressions, random
 * batches of questions; a cut-short rule must fail for every question of
 * its batch before the cut), the captured rules decoded with and without
 * it (a cut-short rule is the full rule's start plus ELIDED), and the view
 * forgetting cut-short chains for a question outside their batch.
 */
import assert from "node:assert/strict";
import { ELIDED, keyOf, Prefilter } from "../../lib/nat/nft_prefilter.ts";
import { decodeRule } from "../../lib/nat/nft_decode.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { LoadedView } from "../../lib/nat/nft_view.ts";
import type { NatQuestion, NftChain, NftExpr } from "../../lib/nat/ruleset.ts";
import type { Exchange } from "../support/nft_replay.ts";

/** A small deterministic PRNG (mulberry32), so a failure names its seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

const DST4 = [[10, 96, 0, 1], [10, 96, 0, 2], [172, 20, 0, 1]];
const DST6 = [[0xfd, 0, ...new Array(13).fill(0), 1], [0xfd, 0, ...new Array(13).fill(0), 2]];
const PORTS = [80, 443, 8080];

function question(r: ReturnType<typeof rng>): NatQuestion {
  const v6 = r.next() < 0.3;
  return {
    family: v6 ? "ipv6" : "ipv4",
    src: new Uint8Array(v6 ? 16 : 4),
    dst: new Uint8Array(r.pick(v6 ? DST6 : DST4)),
    sport: 40000 + r.int(100),
    dport: r.pick(PORTS),
    zone: 0,
    hook: "prerouting",
  };
}

/** Values the batch's fields may carry, and others. */
function data(r: ReturnType<typeof rng>): Uint8Array {
  return new Uint8Array(
    r.pick([
      () => r.pick(DST4),
      () => r.pick(DST6),
      () => [r.pick(PORTS) >> 8, r.pick(PORTS) & 255],
      () => [6],
      () => [17],
      () => [2],
      () => [10],
      () => Array.from({ length: r.pick([1, 2, 4, 16]) }, () => r.int(256)),
    ])(),
  );
}

/** A value of the loaded field's length, often one a question carries. */
function fitting(r: ReturnType<typeof rng>, load: NftExpr): Uint8Array {
  const len = load.op === "payload" ? load.len : 1;
  const port = r.pick(PORTS);
  const halves = DST4.map((d) => d.slice(0, 2));
  const pools = [DST4, DST6, halves, [[port >> 8, port & 255]], [[6], [17], [2], [10]]];
  const fits = pools.flat().filter((v) => v.length === len);
  return new Uint8Array(
    fits.length > 0 && r.next() < 0.8
      ? r.pick(fits)
      : Array.from({ length: len }, () => r.int(256)),
  );
}

/** A load, mostly of a field the prefilter reads; then, mostly, `cmp eq` of its register. */
function pair(r: ReturnType<typeof rng>): NftExpr[] {
  const dreg = r.pick([0, 1, 4]);
  const load: NftExpr = r.next() < 0.3 ? { op: "meta", key: r.pick([15, 16, 3, 4]), dreg } : {
    op: "payload",
    dreg,
    ...r.pick(
      [
        { base: "network", offset: 16, len: 4 },
        { base: "network", offset: 24, len: 16 },
        { base: "network", offset: 12, len: 4 },
        { base: "network", offset: 16, len: 2 },
        { base: "network", offset: 9, len: 1 },
        { base: "transport", offset: 2, len: 2 },
        { base: "transport", offset: 0, len: 2 },
      ] as const,
    ),
  };
  const cmp = r.next() < 0.85 ? "eq" : r.pick(["neq", "lt", "gte"] as const);
  const sreg = r.next() < 0.85 ? dreg : r.pick([0, 1, 4]);
  return [load, { op: "cmp", sreg, cmp, data: r.next() < 0.7 ? fitting(r, load) : data(r) }];
}

/** Anything else a rule may hold. */
function other(r: ReturnType<typeof rng>): NftExpr {
  const reg = r.pick([0, 1, 4]);
  return r.pick<NftExpr>([
    { op: "counter" },
    { op: "match", name: "comment", rev: 0, info: new Uint8Array(0) },
    {
      op: "bitwise",
      sreg: reg,
      dreg: reg,
      len: 4,
      kind: "bool",
      mask: new Uint8Array([255, 255, 0, 0]),
      xor: new Uint8Array(4),
    },
    { op: "lookup", sreg: reg, set: "s", invert: false },
    { op: "cmp", sreg: reg, cmp: "eq", data: data(r) },
    { op: "verdict", verdict: { kind: "jump", chain: "X" } },
  ]);
}

/** A random rule: mostly load-and-compare pairs, some other expressions between. */
function randomRule(r: ReturnType<typeof rng>): NftExpr[] {
  const exprs: NftExpr[] = [];
  for (let i = 0, n = 1 + r.int(5); i < n; i++) {
    if (r.next() < 0.75) exprs.push(...pair(r));
    else exprs.push(other(r));
  }
  return exprs;
}

/**
 * The reference: runs `exprs` for question `q` on 16 words of registers
 * whose bytes are known or not (only the question's family, protocol,
 * destination address and port are known). "fails" only when an `eq`
 * comparison of known bytes differs; anything unknown may pass.
 */
function reference(q: NatQuestion, exprs: readonly NftExpr[]): "fails" | "may pass" {
  const val = new Array<number | undefined>(64).fill(undefined);
  const store = (reg: number, bytes: (number | undefined)[]) => {
    const padded = Math.ceil(bytes.length / 4) * 4; // the kernel zeroes the rest of the last word
    for (let i = 0; i < padded; i++) val[reg * 4 + i] = i < bytes.length ? bytes[i] : 0;
  };
  const net = q.family === "ipv4" ? 16 : 24;
  for (const e of exprs) {
    if (e.op === "payload") {
      const known = (i: number) =>
        e.base === "network" && i >= net && i < net + q.dst.length
          ? q.dst[i - net]
          : e.base === "transport" && i === 2
          ? q.dport >> 8
          : e.base === "transport" && i === 3
          ? q.dport & 255
          : undefined;
      store(e.dreg, Array.from({ length: e.len }, (_, i) => known(e.offset + i)));
    } else if (e.op === "meta") {
      const v = e.key === 15 ? (q.family === "ipv4" ? 2 : 10) : e.key === 16 ? 6 : undefined;
      store(e.dreg, v === undefined ? [undefined, undefined, undefined, undefined] : [v]);
    } else if (e.op === "cmp" && e.cmp === "eq") {
      const got = Array.from(e.data, (_, i) => val[e.sreg * 4 + i]);
      if (got.every((b) => b !== undefined) && got.some((b, i) => b !== e.data[i])) {
        return "fails";
      }
    } else if (e.op === "bitwise" || e.op === "lookup") {
      // Writes something not modelled: forget the destination register.
      if (e.op === "bitwise") store(e.dreg, new Array(e.len).fill(undefined));
    }
  }
  return "may pass";
}

/** Steps `exprs` through a prefilter: the expressions kept, and whether the rule was cut. */
function cut(f: Prefilter, exprs: readonly NftExpr[]): { kept: NftExpr[]; elided: boolean } {
  f.start();
  const kept: NftExpr[] = [];
  for (const e of exprs) {
    kept.push(e);
    if (f.step(e)) return { kept, elided: true };
  }
  return { kept, elided: false };
}

Deno.test("Prefilter.step: never cuts a rule short that a question of the batch may pass (random rules)", () => {
  let elided = 0;
  let kept = 0;
  for (let seed = 1; seed <= 6000; seed++) {
    const r = rng(seed);
    const batch = Array.from({ length: 1 + r.int(4) }, () => question(r));
    const exprs = randomRule(r);
    const f = new Prefilter(batch);
    const c = cut(f, exprs);
    if (!c.elided) {
      kept++;
      continue;
    }
    elided++;
    for (const q of batch) {
      assert.equal(
        reference(q, c.kept),
        "fails",
        `seed ${seed}: ${JSON.stringify({ q: keyOf(q), exprs: c.kept })}`,
      );
    }
  }
  // Not vacuous: both outcomes are common.
  assert.ok(elided > 300 && kept > 300, `${elided} cut short, ${kept} whole`);
});

Deno.test("Prefilter.step: kube-proxy's service rule is cut for other addresses, whole for its own", () => {
  const rule: NftExpr[] = [
    { op: "meta", key: 16, dreg: 0 },
    { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([6]) },
    { op: "payload", base: "network", offset: 16, len: 4, dreg: 0 },
    { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([10, 96, 0, 1]) },
    { op: "match", name: "comment", rev: 0, info: new Uint8Array(0) },
    { op: "payload", base: "transport", offset: 2, len: 2, dreg: 0 },
    { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([0, 80]) },
    { op: "verdict", verdict: { kind: "jump", chain: "KUBE-SVC-1" } },
  ];
  const q = (dst: number[], dport = 80, family: "ipv4" | "ipv6" = "ipv4"): NatQuestion => ({
    family,
    src: new Uint8Array(family === "ipv4" ? 4 : 16),
    dst: new Uint8Array(dst),
    sport: 1,
    dport,
    zone: 0,
    hook: "prerouting",
  });
  assert.equal(cut(new Prefilter([q([10, 96, 0, 2])]), rule).kept.length, 4);
  assert.equal(cut(new Prefilter([q([10, 96, 0, 2]), q([10, 96, 0, 1])]), rule).elided, false);
  // Its address but another port: the run ends at the comment, so the rule stays whole.
  assert.equal(cut(new Prefilter([q([10, 96, 0, 1], 443)]), rule).elided, false);
  // An IPv6 question does not know IPv4 header bytes: never cut for it.
  assert.equal(cut(new Prefilter([q(new Array(16).fill(1), 80, "ipv6")]), rule).elided, false);
  assert.equal(cut(new Prefilter([]), rule).elided, false);
});

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/nft/rulesets.json", import.meta.url)),
) as { exchanges: Exchange[] };

Deno.test("decodeRule with a prefilter: every captured rule is whole or its start plus ELIDED", () => {
  const rules = fixture.exchanges.flatMap((x) =>
    x.replies.flatMap((r) =>
      parseMessages(Uint8Array.from(atob(r), (c) => c.charCodeAt(0))).messages
    )
  ).filter((m) => m.type === ((10 << 8) | 6));
  assert.ok(rules.length >= 30);
  let elided = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const r = rng(seed);
    const f = new Prefilter(Array.from({ length: 1 + r.int(3) }, () => question(r)));
    for (const m of rules) {
      const full = decodeRule(m)!;
      const part = decodeRule(m, f)!;
      assert.deepEqual({ ...part, exprs: [] }, { ...full, exprs: [] });
      if (part.exprs.at(-1) !== ELIDED) {
        assert.deepEqual(part.exprs, full.exprs);
        continue;
      }
      elided++;
      const start = part.exprs.slice(0, -1);
      assert.ok(start.length < full.exprs.length);
      assert.deepEqual(start, full.exprs.slice(0, start.length));
      for (const q of f.questions) assert.equal(reference(q, start), "fails");
    }
  }
  assert.ok(elided > 0, "some captured rule was cut short");
});

Deno.test("LoadedView.useKeys: cut-short chains are forgotten for a question outside their batch only", () => {
  const ref = { family: "ip" as const, table: "nat" };
  const cutShort: NftChain = {
    ...ref,
    name: "KUBE-SERVICES",
    rules: [{ handle: 1, exprs: [ELIDED] }],
  };
  const whole: NftChain = { ...ref, name: "KUBE-SVC-1", rules: [{ handle: 2, exprs: [] }] };
  const base: NftChain = {
    ...ref,
    name: "PREROUTING",
    base: { hook: "prerouting", type: "nat", priority: -100, policy: "accept" },
    rules: [{ handle: 3, exprs: [ELIDED] }],
  };
  const view = new LoadedView(1, new Set());
  view.useKeys(new Set(["ipv4 10.96.0.1 80"]));
  view.addHook("prerouting", [base]);
  view.addChain(cutShort);
  view.addChain(whole);
  view.useKeys(new Set(["ipv4 10.96.0.1 80"]));
  assert.deepEqual([view.hasHook("prerouting"), view.hasChain(cutShort)], [true, true]);
  view.useKeys(new Set(["ipv4 10.96.0.1 80", "ipv4 10.96.0.2 80"]));
  assert.deepEqual(
    [view.hasHook("prerouting"), view.hasChain(cutShort), view.hasChain(whole)],
    [false, false, true],
  );
});
