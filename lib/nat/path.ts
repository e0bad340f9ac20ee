/**
 * One path of the NAT evaluator's abstract run (walk.ts drives the paths,
 * step.ts moves one by an expression): its registers, marks and place in
 * the rule set; what a step makes of it; the context and bounds every step
 * of one evaluation shares.
 *
 * @module
 */

import type { Registers } from "./bits.ts";
import type { Marks, Syn } from "./packet.ts";
import type { NatHook, NftChain, RulesetView, TableRef, TargetRange, Verdict } from "./ruleset.ts";

/** How one path of a base chain ends. */
export type Outcome =
  | { readonly kind: "bind"; readonly targets: readonly TargetRange[] }
  | { readonly kind: "pass"; readonly marks: Marks }
  | { readonly kind: "bad"; readonly reason: string };

/** Bounds on the work of one evaluation. */
export interface Limits {
  /** Expressions evaluated, over all paths of all chains. */
  readonly maxSteps: number;
  /** The most values a number generator or hash forks into. */
  readonly maxFork: number;
}

/** Thrown past a bound; the evaluator answers "not proven" with its message. */
export class BoundError extends Error {}

/** What a walk needs: the question, the view, and where to report what is missing. */
export interface WalkContext {
  readonly syn: Syn;
  readonly view: RulesetView;
  readonly hook: NatHook;
  /** Conntrack has run before this chain (priority > −200). */
  readonly ctKnown: boolean;
  /** A nat chain (its DNAT/REDIRECT bind); otherwise a chain run before nat. */
  readonly natChain: boolean;
  readonly limits: Limits;
  /** Expressions evaluated so far (shared by the whole evaluation). */
  steps: number;
  need(kind: "chain" | "set", ref: TableRef, name: string): void;
}

/** A place in the rule set: a chain and the index of a rule in it. */
export interface Frame {
  readonly chain: NftChain;
  ri: number;
}

/** One path: what it knows of the SYN's registers and marks, where it is, where jumps return. */
export interface Path {
  regs: Registers;
  marks: Marks;
  at: Frame;
  ei: number;
  stack: Frame[];
}

/** What one expression does to its path. */
export type Then = "next" | "break" | Verdict | Outcome | "stop";
/** A step's answer: one way on, or a fork into paths, each with its own way on. */
export type Step = Then | { readonly split: readonly (readonly [Path, Then])[] };

/** A copy of `p` that can go its own way (registers and marks copied). */
export function clonePath(p: Path): Path {
  return {
    regs: p.regs.clone(),
    marks: { ...p.marks, mark: p.marks.mark.clone(), ctmark: p.marks.ctmark.clone() },
    at: { ...p.at },
    ei: p.ei,
    stack: p.stack.map((f) => ({ ...f })),
  };
}

/** Where `p` is, for a reason: its chain and rule. */
export function where(p: Path): string {
  const r = p.at.chain.rules[p.at.ri];
  return `chain ${p.at.chain.table}/${p.at.chain.name}${r ? ` rule ${r.handle}` : ""}`;
}
