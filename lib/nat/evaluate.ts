/**
 * Would the client's next SYN be destination-NATed, and to what? The
 * evaluator runs the node's nf_tables rules (native nftables and
 * iptables-nft alike, as `ruleset.ts` models them) abstractly for that one
 * packet and answers `translated` only when EVERY path ends in a DNAT or
 * REDIRECT binding whose targets all differ from the original destination
 * and port; otherwise `not_proven` with the reason, or `need` when the view
 * has not read a chain or set a path reaches yet.
 *
 * At the hook (prerouting or output) the nat base chains run for the first
 * packet in ascending priority; ACCEPT ends only its own chain; the first
 * binding ends nat at the hook. Chains of equal priority run in an order no
 * dump shows: every order is taken. The nat chains all run at the nat core's
 * place in the hook (priority −100, whatever their own priority: a nat chain
 * at −150 still runs after a filter chain at −120, measured on 6.18); base
 * chains of other types at or below that place run first (those at −100
 * may run either side) and are walked too: any
 * path there that drops, queues, writes the packet, sets a zone or meets an
 * unknown target makes the answer "not proven". Marks they set are not
 * carried into the nat chains (the mark stays unknown there), which keeps
 * the answer sound whatever their real order.
 *
 * The work is bounded ({@linkcode DEFAULT_LIMITS}); past a bound the answer
 * is "not proven".
 *
 * @example
 * ```ts
 * import { evaluate } from "./evaluate.ts";
 * const prerouting = {
 *   family: "ip" as const, table: "nat", name: "PREROUTING",
 *   base: { hook: "prerouting" as const, type: "nat", priority: -100, policy: "accept" as const },
 *   rules: [{ handle: 2, exprs: [
 *     { op: "payload" as const, base: "network" as const, offset: 16, len: 4, dreg: 0 },
 *     { op: "cmp" as const, sreg: 0, cmp: "eq" as const, data: new Uint8Array([10, 96, 0, 1]) },
 *     { op: "immediate" as const, dreg: 0, data: new Uint8Array([10, 244, 1, 5]) },
 *     { op: "nat" as const, type: "dnat" as const, nfproto: 2, addrMin: 0, flags: 1 },
 *   ] }],
 * };
 * const view = {
 *   generation: 7,
 *   baseChains: () => [prerouting],
 *   chain: () => prerouting,
 *   set: () => undefined,
 * };
 * const q = { family: "ipv4" as const, src: new Uint8Array([10, 0, 0, 2]),
 *   dst: new Uint8Array([10, 96, 0, 1]), sport: 40000, dport: 80, zone: 0,
 *   hook: "prerouting" as const };
 * evaluate(q, view).kind; // => "translated"
 * evaluate({ ...q, dst: new Uint8Array([10, 96, 0, 2]) }, view).kind; // => "not_proven"
 * ```
 *
 * @module
 */

import { Bits } from "./bits.ts";
import type { Marks } from "./packet.ts";
import type {
  NatAnswer,
  NatQuestion,
  NftChain,
  RulesetView,
  TableRef,
  TargetRange,
} from "./ruleset.ts";
import { formatTarget, rangeContains, unionTargets } from "./targets.ts";
import { BoundError, type Limits, type Outcome, walkChain, type WalkContext } from "./walk.ts";

/** Default bounds: enough for kube-proxy's chains, small enough for a poll. */
export const DEFAULT_LIMITS: Limits & { readonly maxTies: number } = {
  maxSteps: 200_000,
  maxFork: 4096,
  maxTies: 6,
};

/** Where the nat core hooks in for destination NAT (`NF_IP_PRI_NAT_DST`). */
export const NAT_DST_PRIORITY = -100;
/** Where conntrack hooks in (`NF_IP_PRI_CONNTRACK`): ct data is known only after it. */
export const CONNTRACK_PRIORITY = -200;

type Ref = TableRef & { readonly name: string };

/** Answers `q` from the rules in `view`. */
export function evaluate(
  q: NatQuestion,
  view: RulesetView,
  limits: Limits & { readonly maxTies: number } = DEFAULT_LIMITS,
): NatAnswer {
  const all = view.baseChains(q.family, q.hook);
  if (all === undefined) return notProven(`the base chains at ${q.hook} were not read`);
  const needChains: Ref[] = [];
  const needSets: Ref[] = [];
  const need = (kind: "chain" | "set", ref: TableRef, name: string): void => {
    const list = kind === "chain" ? needChains : needSets;
    if (!list.some((r) => r.family === ref.family && r.table === ref.table && r.name === name)) {
      list.push({ family: ref.family, table: ref.table, name });
    }
  };
  const nat = all.filter((c) => c.base?.type === "nat");
  const before = all.filter((c) =>
    c.base !== undefined && c.base.type !== "nat" &&
    c.base.priority <= NAT_DST_PRIORITY
  ).sort((a, b) => a.base!.priority - b.base!.priority);
  const syn = { family: q.family, src: q.src, dst: q.dst, sport: q.sport, dport: q.dport };
  const ctx = (natChain: boolean, ctKnown: boolean): WalkContext => ({
    syn,
    view,
    hook: q.hook,
    ctKnown,
    natChain,
    limits,
    steps: 0,
    need,
  });
  const unknownMarks = (): Marks => ({ mark: Bits.unknown(4), ctmark: Bits.unknown(4) });
  const withRules = (c: NftChain): NftChain | undefined => {
    const full = view.chain({ family: c.family, table: c.table }, c.name);
    if (full === undefined) need("chain", c, c.name);
    return full;
  };
  let steps = 0;
  try {
    for (const c of before) {
      const full = withRules(c);
      if (full === undefined) continue;
      const x = ctx(false, c.base!.priority > CONNTRACK_PRIORITY);
      x.steps = steps;
      const outs = walkChain(x, { ...full, base: c.base! }, unknownMarks());
      steps = x.steps;
      const bad = outs.find((o) => o.kind === "bad");
      if (bad !== undefined) {
        return notProven(`before nat: ${bad.kind === "bad" ? bad.reason : ""}`);
      }
    }
    const seq = new Sequencer(nat, ctx(true, true), withRules, limits.maxTies);
    seq.ctx.steps = steps;
    seq.run(unknownMarks());
    if (seq.bad !== undefined) return notProven(seq.bad);
    if (needChains.length > 0 || needSets.length > 0) {
      return { kind: "need", chains: needChains, sets: needSets };
    }
    if (seq.unbound !== undefined) return notProven(seq.unbound);
    if (seq.targets.length === 0) return notProven(`no nat chain at ${q.hook}`);
    const identity = seq.targets.find((t) => rangeContains(t, q.dst, q.dport));
    if (identity !== undefined) {
      return notProven(`a target holds the original destination: ${formatTarget(identity)}`);
    }
    return { kind: "translated", targets: seq.targets };
  } catch (e) {
    if (e instanceof BoundError) return notProven(`evaluation bound: ${e.message}`);
    throw e;
  }
}

function notProven(reason: string): NatAnswer {
  return { kind: "not_proven", reason };
}

/**
 * Runs the nat chains in every order their priorities allow, carrying the
 * marks each path leaves; walks of one chain from one state are cached.
 */
class Sequencer {
  targets: TargetRange[] = [];
  bad: string | undefined;
  unbound: string | undefined;
  readonly #groups: NftChain[][];
  readonly #cache = new Map<string, Outcome[]>();

  constructor(
    nat: NftChain[],
    readonly ctx: WalkContext,
    readonly withRules: (c: NftChain) => NftChain | undefined,
    readonly maxTies: number,
  ) {
    const byPrio = new Map<number, NftChain[]>();
    for (const c of nat) byPrio.set(c.base!.priority, [...(byPrio.get(c.base!.priority) ?? []), c]);
    this.#groups = [...byPrio.keys()].sort((a, b) => a - b).map((k) => byPrio.get(k)!);
  }

  run(marks: Marks): void {
    const wide = this.#groups.find((g) => g.length > this.maxTies);
    if (wide !== undefined) {
      this.bad = `${wide.length} nat chains share priority ${wide[0]!.base!.priority}`;
      return;
    }
    if (this.#groups.length > 0) this.#next(this.#groups[0]!, 1, marks);
  }

  /** Runs each chain of `group` first in turn, then the rest of it, then group `gi`. */
  #next(group: NftChain[], gi: number, marks: Marks): void {
    if (group.length === 0) {
      const g = this.#groups[gi];
      if (g === undefined) {
        this.unbound ??= `a path through the nat chains ends without DNAT or REDIRECT`;
        return;
      }
      this.#next(g, gi + 1, marks);
      return;
    }
    for (let i = 0; i < group.length && this.bad === undefined; i++) {
      const rest = group.filter((_, j) => j !== i);
      for (const o of this.#walk(group[i]!, marks)) {
        if (o.kind === "bad") this.bad ??= o.reason;
        else if (o.kind === "bind") this.targets = unionTargets(this.targets, o.targets);
        else this.#next(rest, gi, o.marks);
        if (this.bad !== undefined) return;
      }
    }
  }

  #walk(c: NftChain, marks: Marks): Outcome[] {
    const key = `${c.family}/${c.table}/${c.name}|${marks.mark.key()}|${marks.ctmark.key()}`;
    const hit = this.#cache.get(key);
    if (hit !== undefined) return hit;
    const full = this.withRules(c);
    const outs = full === undefined
      ? []
      : dedupe(walkChain(this.ctx, { ...full, base: c.base! }, marks));
    this.#cache.set(key, outs);
    return outs;
  }
}

/** One pass outcome per distinct mark state; binds and the first bad kept. */
function dedupe(outs: Outcome[]): Outcome[] {
  const seen = new Set<string>();
  return outs.filter((o) => {
    const k = o.kind === "pass"
      ? `p${o.marks.mark.key()}|${o.marks.ctmark.key()}`
      : o.kind === "bind"
      ? `b${o.targets.map(formatTarget).join(",")}`
      : `x${o.reason}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
