/**
 * The one seam for deletion rules: a {@linkcode Rule} says what it needs from
 * the next read of the table, and decides, purely, from what one read and the
 * tracker's history of each candidate say. The agent asks every rule,
 * de-duplicates their decisions once (first rule wins) and deletes.
 *
 * Each rule's decisions carry details of their own: a rule exports its details
 * type (`rule` names the rule) and is a `Rule<ItsDetails>`. Adding a rule is a
 * file in `lib/rules/` and one entry in lib/run/rules.ts, the registry, which
 * builds the union of every rule's details (`DecisionDetails`).
 *
 * @module
 */
import type { Candidate, Snapshot, SnapshotOptions } from "../model/snapshot.ts";
import type { NatVerdict } from "../nat/verdicts.ts";
import type { Tuple } from "../model/tuple.ts";
import type { TrackResult } from "./tracker.ts";

/**
 * A lower bound of a candidate's age at the moment it was seen, in ms, as
 * every age-gated rule counts it: the larger of what the kernel's remaining
 * timeout says (`synSentTimeoutS − timeout − 1` s, since the kernel rounds
 * down; nothing when the timeout setting is unknown) and the time since the
 * tracker first saw this very entry (`sameSince`, a `seenTo`), counted from
 * `seenFrom`, the earliest moment this sighting can have been made.
 *
 * @example
 * ```ts
 * import { candidateAgeMs } from "./rule.ts";
 * candidateAgeMs({ timeout: 100, seenFrom: 5000 }, undefined, 120); // => 19000
 * candidateAgeMs({ timeout: 119, seenFrom: 10_000 }, 7_000, 120); // => 3000
 * candidateAgeMs({ timeout: 100, seenFrom: 5000 }, undefined, undefined); // => 0
 * ```
 */
export function candidateAgeMs(
  c: Pick<Candidate, "timeout" | "seenFrom">,
  sameSince: number | undefined,
  synSentTimeoutS: number | undefined,
): number {
  const kernel = synSentTimeoutS === undefined
    ? 0
    : Math.max(0, synSentTimeoutS - c.timeout - 1) * 1000;
  const seen = sameSince === undefined ? 0 : Math.max(0, c.seenFrom - sameSince);
  return Math.max(kernel, seen);
}

/**
 * Milliseconds as seconds, for a reason in a log line.
 *
 * @example
 * ```ts
 * import { secondsText } from "./rule.ts";
 * secondsText(2500); // => "2.5s"
 * ```
 */
export function secondsText(ms: number): string {
  return `${Math.round(ms) / 1000}s`;
}

/** What a rule is given for one poll. */
export interface RuleInput {
  /**
   * The read, with only the candidates inside `--destinations` (all by
   * default); its `evidence` is the whole read's, as the source delivered it.
   */
  snapshot: Snapshot;
  /** What the tracker made of this read (renewals counted, renewed entries). */
  track: TrackResult;
  /**
   * From when (monotonic ms, a `seenTo`) the tracker knows this very entry
   * unchanged: reset by a new kernel id or a counted renewal (an entry
   * replaced between reads, on sources without ids). `undefined`: unknown.
   */
  sameSince(c: Candidate): number | undefined;
  /**
   * Set only while kept candidates are logged (`--log-level=debug`): a rule
   * calls it for each candidate it considered and did not decide, with why.
   * Call it as `input.keep?.(c, \`…\`)`, so that unset, no reason is built.
   */
  keep?: (c: Candidate, reason: string) => void;
  /**
   * What the node's NAT rules say of a candidate's next SYN, for the
   * candidates the rules asked about this poll ({@linkcode Rule.natAsk});
   * `undefined` for any other, and for all when the NAT rules are not read
   * (`--nat-rules=off`, or no rule asked). See lib/nat/verdicts.ts.
   */
  nat?: (c: Candidate) => NatVerdict | undefined;
}

/** What every rule's decision details have: the rule's name, as logs and metrics label it. */
export interface Details {
  rule: string;
}

/** An entry to delete (or, in a dry run, to report), why, and the deciding rule's details. */
export type Decision<D extends Details = Details> = D & {
  tuple: Tuple;
  /** Why, in words, for the log line. */
  reason: string;
  /** The kernel's id, where the source knows it: the deleter deletes only that entry. */
  id?: number;
};

/** A deletion rule, whose decisions carry details `D`. */
export interface Rule<D extends Details = Details> {
  readonly name: D["rule"];
  /**
   * What the rule wants collected in the next read (evidence keys), from
   * what it saw so far; `undefined`: nothing beyond the candidates.
   */
  wants?(): SnapshotOptions | undefined;
  /**
   * The candidates of this read whose NAT verdict the rule needs to decide
   * (lib/nat/verdicts.ts): the agent asks the node's rules once for every
   * rule's candidates, then passes the verdicts in `input.nat`. Pure; asking
   * for none reads nothing.
   */
  natAsk?(input: RuleInput): readonly Candidate[];
  /**
   * The decisions for one read. Pure apart from the rule's own memory of
   * earlier reads (called once per successful read, in order).
   */
  decide(input: RuleInput): Decision<D>[];
  /** The decision's details as log fields (besides tuple, rule and reason). */
  logFields(d: Decision<D>): Record<string, unknown>;
}

/**
 * Merges what the rules want from the next read into one set of options.
 *
 * @example
 * ```ts
 * import { mergeWants } from "./rule.ts";
 * const key = { family: "ipv4" as const, src: "10.1.0.7", dst: "10.96.0.10", dport: 80, zone: 0 };
 * mergeWants([{ evidenceFor: [key] }, undefined, { evidenceFor: [key] }]).evidenceFor?.length; // => 1
 * mergeWants([undefined]); // => {}
 * ```
 */
export function mergeWants(wants: readonly (SnapshotOptions | undefined)[]): SnapshotOptions {
  const keys = new Map<string, NonNullable<SnapshotOptions["evidenceFor"]>[number]>();
  for (const w of wants) {
    for (const k of w?.evidenceFor ?? []) {
      keys.set(`${k.family} ${k.src} ${k.dst} ${k.dport} ${k.zone}`, k);
    }
  }
  return keys.size > 0 ? { evidenceFor: [...keys.values()] } : {};
}
