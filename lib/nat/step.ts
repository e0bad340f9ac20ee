/**
 * What one nf_tables expression does to one path of the NAT evaluator's
 * abstract run (`walk.ts` drives the paths): loads put known or unknown
 * bits in registers, tests decide or fork, look-ups fork per element that
 * may hit, number generators fork per value, and NAT statements end the
 * path with a binding. Anything with an effect the evaluator does not
 * model ends the path "bad" (the answer is then "not proven"); a test it
 * does not model forks both ways and forgets every register.
 *
 * @example
 * ```ts
 * import { expr } from "./step.ts";
 * import type { Path } from "./path.ts";
 * import { Bits, Registers } from "./bits.ts";
 * const chain = { family: "ip" as const, table: "nat", name: "X", rules: [] };
 * const p: Path = { regs: new Registers(), marks: { mark: Bits.unknown(4), ctmark: Bits.unknown(4) },
 *   at: { chain, ri: 0 }, ei: 0, stack: [] };
 * const syn = { family: "ipv4" as const, src: new Uint8Array([10, 0, 0, 2]),
 *   dst: new Uint8Array([10, 96, 0, 1]), sport: 40000, dport: 80 };
 * const view = { generation: 1, baseChains: () => [], chain: () => undefined, set: () => undefined };
 * const ctx = { syn, view, hook: "prerouting" as const, ctKnown: true, natChain: true,
 *   limits: { maxSteps: 10, maxFork: 4 }, steps: 0, need: () => {} };
 * expr(ctx, p, { op: "payload", base: "network", offset: 16, len: 4, dreg: 0 }); // => "next"
 * expr(ctx, p, { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([10, 96, 0, 1]) }); // => "next"
 * expr(ctx, p, { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([10, 96, 0, 2]) }); // => "break"
 * ```
 *
 * @module
 */

import { Bits, cmpBits, inRangeBits, swapBits, type Tri, u32Host } from "./bits.ts";
import { bitwiseBool } from "./bits.ts";
import {
  CT,
  ctBits,
  META,
  metaBits,
  nfproto,
  payloadBits,
  u16Host,
  zoneNotKept,
} from "./packet.ts";
import type { NftExpr, NftSet } from "./ruleset.ts";
import { lookupSet } from "./sets.ts";
import {
  clonePath,
  type Outcome,
  type Path,
  type Step,
  type Then,
  type WalkContext,
  where,
} from "./path.ts";
import { natTargets } from "./nat_target.ts";
import { applyMark, decodeTarget, evalMatch, MAP_IPS, PROTO_SPECIFIED } from "./xt.ts";

/** Expression names that only test (or count) and write no register the evaluator reads: both ways. */
const TESTS = new Set([
  "limit",
  "quota",
  "connlimit",
  "dynset",
  "fib",
  "rt",
  "socket",
  "osf",
  "xfrm",
  "exthdr",
  "inner",
  "tunnel",
  "cmp",
  "range",
]);
/** Expression names that do nothing a NAT decision reads. */
const NOOPS = new Set(["counter", "log", "last"]);

function test(p: Path, t: Tri): Step {
  if (t === true) return "next";
  if (t === false) return "break";
  return { split: [[p, "next"], [clonePath(p), "break"]] };
}

function set(ctx: WalkContext, p: Path, name: string): NftSet | undefined {
  const ref = { family: p.at.chain.family, table: p.at.chain.table };
  const s = ctx.view.set(ref, name);
  if (s === undefined) ctx.need("set", ref, name);
  return s;
}

/** One expression on path `p`. */
export function expr(ctx: WalkContext, p: Path, e: NftExpr): Step {
  const { syn, limits } = ctx;
  const r = p.regs;
  switch (e.op) {
    case "immediate":
      r.store(e.dreg, Bits.known(e.data));
      return "next";
    case "verdict":
      return e.verdict;
    case "payload":
      r.store(e.dreg, payloadBits(syn, e.base, e.offset, e.len));
      return "next";
    case "meta":
      r.store(e.dreg, metaBits(syn, e.key, p.marks, ctx.hook));
      return "next";
    case "ct":
      r.store(e.dreg, ctBits(syn, e.key, e.dir, p.marks, ctx.ctKnown));
      return "next";
    case "cmp":
      return test(p, cmpBits(r.load(e.sreg, e.data.length), e.data, e.cmp));
    case "range": {
      const t = inRangeBits(r.load(e.sreg, e.from.length), e.from, e.to);
      return test(p, e.cmp === "eq" || t === "both" ? t : !t);
    }
    case "bitwise":
      if (e.kind === "bool" && e.mask !== undefined && e.xor !== undefined) {
        r.store(e.dreg, bitwiseBool(r.load(e.sreg, e.len), e.mask, e.xor));
      } else r.clobber(e.dreg, e.len);
      return "next";
    case "byteorder":
      r.store(e.dreg, swapBits(r.load(e.sreg, e.len), e.size));
      return "next";
    case "meta_set":
      if (e.key === META.MARK) p.marks.mark = r.load(e.sreg, 4);
      else if (![META.PRIORITY, META.NFTRACE, META.SECMARK].includes(e.key as 2)) {
        return { kind: "bad", reason: `meta key ${e.key} set in ${where(p)}` };
      }
      return "next";
    case "ct_set":
      if (e.key === CT.ZONE) return setZone(ctx, p, r.load(e.sreg, 2), e.dir);
      if (e.key === CT.MARK) p.marks.ctmark = r.load(e.sreg, 4);
      else if (![CT.LABELS, CT.SECMARK, CT.EVENTMASK].includes(e.key as 13)) {
        return { kind: "bad", reason: `ct key ${e.key} set in ${where(p)}` };
      }
      return "next";
    case "payload_set":
      return { kind: "bad", reason: `packet write in ${where(p)}` };
    case "lookup":
      return lookup(ctx, p, e);
    case "numgen":
    case "hash": {
      if (e.mod > limits.maxFork) {
        r.clobber(e.dreg, 4);
        return "next";
      }
      const split: [Path, Then][] = [];
      for (let v = 0; v < e.mod; v++) {
        const q = v === e.mod - 1 ? p : clonePath(p);
        q.regs.store(e.dreg, Bits.known(u32Host(e.offset + v)));
        split.push([q, "next"]);
      }
      return { split };
    }
    case "nat": {
      if (!ctx.natChain || e.type !== "dnat") {
        return { kind: "bad", reason: `${e.type} in ${where(p)}` };
      }
      if (e.nfproto !== 1 && e.nfproto !== nfproto(syn.family)) return "next";
      const alen = syn.family === "ipv4" ? 4 : 16;
      const parts = [e.addrMin, e.addrMax ?? e.addrMin].map((g) =>
        g === undefined ? undefined : r.load(g, alen)
      );
      const ports = [e.protoMin, e.protoMax ?? e.protoMin].map((g) =>
        g === undefined ? undefined : r.load(g, 2)
      );
      if ([...parts, ...ports].some((b) => b !== undefined && !b.isKnown())) {
        return { kind: "bad", reason: `dnat from a register not known in ${where(p)}` };
      }
      const port = (b: Bits | undefined) => b === undefined ? 0 : (b.val[0]! << 8) | b.val[1]!;
      const flags = (parts[0] ? MAP_IPS : 0) | (ports[0] ? PROTO_SPECIFIED : 0);
      return bind(ctx, "dnat", {
        flags,
        ...(parts[0] ? { addrMin: parts[0].val, addrMax: parts[1]!.val } : {}),
        ...(ports[0] ? { portMin: port(ports[0]), portMax: port(ports[1]) } : {}),
      }, p);
    }
    case "redir": {
      if (!ctx.natChain) return { kind: "bad", reason: `redirect in ${where(p)}` };
      const ports = [e.protoMin, e.protoMax ?? e.protoMin].map((g) =>
        g === undefined ? undefined : r.load(g, 2)
      );
      if (ports.some((b) => b !== undefined && !b.isKnown())) {
        return { kind: "bad", reason: `redirect to a port not known in ${where(p)}` };
      }
      const port = (b: Bits) => (b.val[0]! << 8) | b.val[1]!;
      return bind(ctx, "redirect", {
        flags: ports[0] ? PROTO_SPECIFIED : 0,
        ...(ports[0] ? { portMin: port(ports[0]), portMax: port(ports[1]!) } : {}),
      }, p);
    }
    case "masq":
      return { kind: "bad", reason: `masquerade in ${where(p)}` };
    case "match":
      return test(p, evalMatch(e.name, e.rev, e.info, syn, p.marks, ctx.ctKnown));
    case "target":
      return target(ctx, p, e);
    case "counter":
      return "next";
    case "other":
      if (NOOPS.has(e.name)) return "next";
      if (TESTS.has(e.name)) {
        r.clobberAll();
        return test(p, "both");
      }
      return { kind: "bad", reason: `expression ${e.name} in ${where(p)}` };
  }
}

function bind(
  ctx: WalkContext,
  kind: "dnat" | "redirect",
  range: Parameters<typeof natTargets>[2],
  p: Path,
): Outcome {
  const t = natTargets(ctx.syn, kind, range, ctx.hook);
  return typeof t === "string"
    ? { kind: "bad", reason: `${t} in ${where(p)}` }
    : { kind: "bind", targets: t };
}

function lookup(ctx: WalkContext, p: Path, e: Extract<NftExpr, { op: "lookup" }>): Step {
  const s = set(ctx, p, e.set);
  if (s === undefined) return "stop";
  const o = lookupSet(s, p.regs.load(e.sreg, s.keyLen));
  if (e.dreg === undefined) {
    const hit = o.hits.length > 0 || o.unseen;
    const t: Tri = hit && o.miss ? "both" : hit;
    return test(p, t === "both" || !e.invert ? t : !t);
  }
  if (e.invert) return { kind: "bad", reason: `inverted map look-up in ${where(p)}` };
  if (e.dreg === "verdict" && o.unseen) {
    return { kind: "bad", reason: `verdict map ${s.name} changes from the packet path` };
  }
  const split: [Path, Then][] = [];
  for (const el of o.hits) {
    const q = clonePath(p);
    if (e.dreg === "verdict") {
      if (el.verdict === undefined) {
        return { kind: "bad", reason: `element without verdict in ${s.name}` };
      }
      split.push([q, el.verdict]);
    } else {
      if (el.data === undefined) {
        return { kind: "bad", reason: `element without data in ${s.name}` };
      }
      q.regs.store(e.dreg, Bits.known(el.data));
      split.push([q, "next"]);
    }
  }
  if (o.unseen && typeof e.dreg === "number") {
    const q = clonePath(p);
    q.regs.clobber(e.dreg, typeof s.data === "number" ? s.data : 16);
    split.push([q, "next"]);
  }
  if (o.miss) split.push([p, "break"]);
  return { split };
}

function target(ctx: WalkContext, p: Path, e: Extract<NftExpr, { op: "target" }>): Step {
  const t = decodeTarget(e.name, e.rev, e.info, ctx.syn.family);
  switch (t.kind) {
    case "dnat":
    case "redirect":
      if (!ctx.natChain) return { kind: "bad", reason: `${e.name} in ${where(p)}` };
      return bind(ctx, t.kind, t.range, p);
    case "mark":
      p.marks.mark = applyMark(p.marks.mark, t.value, t.mask);
      return "next";
    case "marks_unknown":
      p.marks = { mark: Bits.unknown(4), ctmark: Bits.unknown(4) };
      return "next";
    case "noop":
      return "next";
    case "zone":
      return setZone(ctx, p, Bits.known(u16Host(t.zone)), undefined);
    case "masquerade":
      return { kind: "bad", reason: `MASQUERADE in ${where(p)}` };
    default:
      return { kind: "bad", reason: `${t.why} in ${where(p)}` };
  }
}

/** A zone set before conntrack: only the candidate's own zone, for both directions, goes on. */
function setZone(ctx: WalkContext, p: Path, zone: Bits, dir: 0 | 1 | undefined): Step {
  const why = zoneNotKept(ctx.syn.zone, zone, dir);
  if (why !== undefined) return { kind: "bad", reason: `${why} in ${where(p)}` };
  p.marks.zoneSet = true;
  return "next";
}
