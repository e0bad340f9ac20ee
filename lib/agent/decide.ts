/**
 * One poll's decision step, after the read and the tracker: the NAT rules
 * asked once for every candidate a rule needs their word on
 * ({@linkcode askNatRules}), then every rule asked in order, each tuple
 * decided once, for the first rule ({@linkcode decideAll}).
 *
 * @example
 * ```ts
 * import { askNatRules } from "./decide.ts";
 * const input = {
 *   snapshot: { candidates: [], scanned: 0, malformed: 0, startedAt: 0, finishedAt: 1 },
 *   track: { stale: [], renewals: 0, tracked: 0, forgotten: 0 },
 *   sameSince: () => undefined,
 * };
 * const nat = await askNatRules([], input, { judge: () => Promise.reject(new Error("not asked")) });
 * nat.asked; // => 0
 * ```
 *
 * @module
 */
import type { Candidate } from "../model/snapshot.ts";
import { type Tuple, tupleKey } from "../model/tuple.ts";
import type { NatVerdict } from "../nat/verdicts.ts";
import type { Decision, Rule, RuleInput } from "../rules/rule.ts";

/** What judges candidates against the node's NAT rules (`NatVerdicts` of lib/nat/verdicts.ts). */
export interface NatJudge {
  /** A verdict per tuple, in order; never rejects for a rule that cannot be read. */
  judge(tuples: readonly Tuple[]): Promise<NatVerdict[]>;
}

/** The NAT rules' word on this poll's asked candidates. */
export interface NatAnswers {
  /** Candidates asked about (0: the rules were not read). */
  asked: number;
  /** The verdict of an asked candidate, by its tuple. */
  verdict(c: Candidate): NatVerdict | undefined;
}

/**
 * Asks `judge` once about every candidate some rule's `natAsk` names
 * (each tuple once). Nothing is read when no rule asks; a judge that fails
 * makes every verdict `unreadable`.
 */
export async function askNatRules(
  rules: readonly Rule[],
  input: RuleInput,
  judge: NatJudge,
): Promise<NatAnswers> {
  const byKey = new Map<string, Candidate>();
  for (const rule of rules) {
    for (const c of rule.natAsk?.(input) ?? []) byKey.set(tupleKey(c), c);
  }
  if (byKey.size === 0) return { asked: 0, verdict: () => undefined };
  const asked = [...byKey.values()];
  let verdicts: readonly NatVerdict[];
  try {
    verdicts = await judge.judge(asked);
  } catch (e) {
    // Not read: the rules decide nothing this poll, as when unreadable.
    const reason = `NAT rules: ${e instanceof Error ? e.message : String(e)}`;
    verdicts = asked.map(() => ({ kind: "unreadable", reason }));
  }
  const found = new Map<string, NatVerdict>();
  asked.forEach((c, i) => {
    found.set(tupleKey(c), verdicts[i] ?? { kind: "unreadable", reason: "no verdict" });
  });
  return { asked: asked.length, verdict: (c) => found.get(tupleKey(c)) };
}

/** Notes a kept candidate with the rule that kept it and why (the debug log). */
export type KeptNote = (rule: string, c: Tuple, reason: string) => void;

/**
 * Every rule's decisions for one read, in rule order, each tuple once (the
 * first rule's); with `note`, each rule tells which candidates it kept and
 * why.
 */
export function decideAll(
  rules: readonly Rule[],
  input: RuleInput,
  note?: KeptNote,
): { decisions: Decision[]; taken: Set<string> } {
  const taken = new Set<string>();
  const decisions: Decision[] = [];
  for (const rule of rules) {
    const keep = note && ((c: Tuple, why: string) => note(rule.name, c, why));
    for (const d of rule.decide(keep ? { ...input, keep } : input)) {
      const key = tupleKey(d.tuple);
      if (taken.has(key)) continue;
      taken.add(key);
      decisions.push(d);
    }
  }
  return { decisions, taken };
}
