/**
 * Walks one base chain for the next SYN: the nf_tables register machine
 * (`nft_do_chain`) run abstractly. Registers and marks hold known or
 * unknown bits (`bits.ts`); a test the agent cannot decide forks the path,
 * and every path runs to its end: a NAT binding, a pass to the next chain
 * (accept, or the end of the base chain under an accept policy), or a
 * "bad" end (drop, queue, an unknown target, a write the evaluator does not
 * model) that makes the answer "not proven".
 *
 * Semantics kept from the kernel: registers live for one base-chain run
 * (jumps share them) and start unknown; a load of fewer bytes than a word
 * zero-fills the word; a failed test ends the rule (`NFT_BREAK`); a verdict
 * ends the rule; `jump` pushes the next rule (at most 16 deep, the kernel's
 * `NFT_JUMP_STACK_SIZE`), `goto` does not; `return` or the end of a chain
 * pops, and at the base chain applies its policy; a look-up that misses
 * ends the rule; `dnat`/`redirect` end the chain with a binding; `nat`
 * for another family (inet tables) does nothing and the rule goes on.
 *
 * Chains and sets come from the view; one not read yet is reported through
 * `need` and the path stops there (the caller asks again once it is read).
 *
 * @example
 * ```ts
 * import { type Outcome, walkChain } from "./walk.ts";
 * import { Bits } from "./bits.ts";
 * const chain = {
 *   family: "ip" as const, table: "nat", name: "PREROUTING",
 *   base: { hook: "prerouting" as const, type: "nat", priority: -100, policy: "accept" as const },
 *   rules: [{ handle: 1, exprs: [
 *     { op: "immediate" as const, dreg: 0, data: new Uint8Array([10, 0, 0, 9]) },
 *     { op: "nat" as const, type: "dnat" as const, nfproto: 2, addrMin: 0, flags: 1 },
 *   ] }],
 * };
 * const view = { generation: 1, baseChains: () => [chain], chain: () => chain, set: () => undefined };
 * const syn = { family: "ipv4" as const, src: new Uint8Array([10, 0, 0, 2]),
 *   dst: new Uint8Array([10, 96, 0, 1]), sport: 40000, dport: 80 };
 * const ctx = { syn, view, hook: "prerouting" as const, ctKnown: true, natChain: true,
 *   limits: { maxSteps: 1000, maxFork: 16 }, steps: 0, need: () => {} };
 * const out: Outcome[] = walkChain(ctx, chain, { mark: Bits.unknown(4), ctmark: Bits.unknown(4) });
 * out.length; // => 1
 * out[0]!.kind; // => "bind"
 * ```
 *
 * @module
 */

import { Registers } from "./bits.ts";
import { nextRule } from "./rule_index.ts";
import type { Marks } from "./packet.ts";
import type { NftChain, Verdict } from "./ruleset.ts";
import { expr } from "./step.ts";
import { BoundError, type Outcome, type Path, type Then, type WalkContext, where } from "./path.ts";

export { BoundError, type Limits, type Outcome, type WalkContext } from "./path.ts";

/** The kernel's `NFT_JUMP_STACK_SIZE`. */
export const JUMP_STACK = 16;

/** Walks base chain `base` (with its rules) from path state `marks`; every path's end. */
export function walkChain(ctx: WalkContext, base: NftChain, marks: Marks): Outcome[] {
  const out: Outcome[] = [];
  const work: Path[] = [{
    regs: new Registers(),
    marks: { ...marks, mark: marks.mark.clone(), ctmark: marks.ctmark.clone() },
    at: { chain: base, ri: 0 },
    ei: 0,
    stack: [],
  }];
  const policy = (): Outcome =>
    base.base?.policy === "accept"
      ? { kind: "pass", marks: p.marks }
      : { kind: "bad", reason: `policy drop of base chain ${base.table}/${base.name}` };
  let p = work[0]!;
  // applies `then` to `p`; false when the path ended (an outcome was recorded)
  const apply = (then: Then): boolean => {
    if (then === "stop") return false;
    if (then === "next") p.ei++;
    else if (then === "break") {
      p.at.ri++;
      p.ei = 0;
    } else if (
      "kind" in then && (then.kind === "bind" || then.kind === "pass" || then.kind === "bad")
    ) {
      out.push(then);
      return false;
    } else return verdict(then as Verdict);
    return true;
  };
  const verdict = (v: Verdict): boolean => {
    switch (v.kind) {
      case "continue":
        p.ei++;
        return true;
      case "break":
        return apply("break");
      case "accept":
        out.push({ kind: "pass", marks: p.marks });
        return false;
      case "drop":
        out.push({ kind: "bad", reason: `drop in ${where(p)}` });
        return false;
      case "return":
        return ret();
      case "jump":
      case "goto": {
        const ref = { family: p.at.chain.family, table: p.at.chain.table };
        const next = ctx.view.chain(ref, v.chain);
        if (next === undefined) {
          ctx.need("chain", ref, v.chain);
          return false;
        }
        if (v.kind === "jump") {
          if (p.stack.length >= JUMP_STACK) {
            out.push({ kind: "bad", reason: `jumps deeper than ${JUMP_STACK} at ${where(p)}` });
            return false;
          }
          p.stack.push({ chain: p.at.chain, ri: p.at.ri + 1 });
        }
        p.at = { chain: next, ri: 0 };
        p.ei = 0;
        return true;
      }
      default:
        out.push({ kind: "bad", reason: `verdict code ${v.code} in ${where(p)}` });
        return false;
    }
  };
  const ret = (): boolean => {
    const f = p.stack.pop();
    if (f === undefined) {
      out.push(policy());
      return false;
    }
    p.at = f;
    p.ei = 0;
    return true;
  };
  while (work.length > 0) {
    p = work.pop()!;
    for (;;) {
      if (++ctx.steps > ctx.limits.maxSteps) {
        throw new BoundError(`more than ${ctx.limits.maxSteps} steps`);
      }
      const rules = p.at.chain.rules;
      if (p.at.ri >= rules.length) {
        if (ret()) continue;
        break;
      }
      if (p.ei === 0) {
        const n = nextRule(p.at.chain, p.at.ri, ctx.syn.dst);
        if (n !== p.at.ri) {
          // skipped rules may have loaded registers: forget them all
          p.regs.clobberAll();
          p.at.ri = n;
          continue;
        }
      }
      const exprs = rules[p.at.ri]!.exprs;
      if (p.ei >= exprs.length) {
        apply("break");
        continue;
      }
      const step = expr(ctx, p, exprs[p.ei]!);
      if (typeof step === "object" && "split" in step) {
        for (const [q, then] of step.split) {
          p = q;
          if (apply(then)) work.push(q);
        }
        break;
      }
      if (!apply(step)) break;
    }
  }
  return out;
}
