/**
 * The un-NATed rule, for kernels that no longer renew stuck entries: a TCP
 * `SYN_SENT` `[UNREPLIED]` entry whose destination was not translated, at
 * least `afterMs` old, whose client's next SYN would be translated now.
 *
 * Where the node's NAT rules were read (lib/nat/, `input.nat`), they alone
 * decide: `translated` deletes (provider `nat_rules`), `not_proven` keeps,
 * whoever else would vouch. Only where they are `unreadable` (legacy
 * iptables nat, IPVS, a read error) or not read (`--nat-rules=off`) do the
 * {@linkcode NatProvider}s decide, the first "yes" in order:
 *
 * - `destinations` (lib/rules/providers/destinations.ts): inside
 *   `--destinations`; the operator vouches for every client;
 * - `table` (lib/rules/providers/table_evidence.ts, zero config): this same
 *   client's newer connection to it was translated, and is in this read,
 *   and no translated connection of it there may be older;
 * - `kubernetes`: a Service address and port with ready endpoints.
 *
 * Age is a lower bound: the larger of what the kernel's remaining timeout
 * says (`synSentTimeoutS − timeout − 1` s, since the kernel rounds down) and
 * the time since the tracker first saw this very entry (`seenFrom` of this
 * read minus `sameSince`).
 *
 * @module
 */
import type { Candidate } from "../model/snapshot.ts";
import { toTuple } from "../model/tuple.ts";
import type { NatProvider } from "./providers/provider.ts";
import { formatTarget } from "../nat/targets.ts";
import {
  candidateAgeMs,
  type Decision,
  mergeWants,
  type Rule,
  type RuleInput,
  secondsText as age,
} from "./rule.ts";
import type { SnapshotOptions } from "../model/snapshot.ts";

/** The un-NATed rule's details of a decision. */
export interface UnnatedDetails {
  rule: "unnated";
  /** How old the entry is at least, in milliseconds. */
  ageMs: number;
  /** The provider that vouched that the destination is NATed now for this client. */
  provider: string;
}

/** Options for {@linkcode UnnatedRule}. */
export interface UnnatedRuleOptions {
  /** Minimum age, in milliseconds. */
  afterMs: number;
  /**
   * The kernel's `nf_conntrack_tcp_timeout_syn_sent`, in seconds; `undefined`
   * when unknown (age then comes from the time since first seen only).
   */
  synSentTimeoutS: number | undefined;
  /** Who may vouch that a destination is NATed now; asked in order, the first "yes" wins. */
  providers: readonly NatProvider[];
}

/**
 * The rule.
 *
 * @example
 * ```ts
 * import { UnnatedRule } from "./unnated.ts";
 * import { DestinationsProvider } from "./providers/destinations.ts";
 * import { parseDestinations } from "../model/destination_set.ts";
 * const set = parseDestinations("198.51.100.80/32:80");
 * if (typeof set !== "string") {
 *   const rule = new UnnatedRule({
 *     afterMs: 2000, synSentTimeoutS: 120, providers: [new DestinationsProvider(set)],
 *   });
 *   const stuck = {
 *     family: "ipv4" as const, src: "192.0.2.7", dst: "198.51.100.80", sport: 40000, dport: 80,
 *     zone: 0, timeout: 116, seenFrom: 1000, seenTo: 1001, id: 7,
 *   };
 *   const snapshot = { candidates: [stuck], scanned: 1, malformed: 0, startedAt: 1000, finishedAt: 1002 };
 *   const track = { stale: [], renewals: 0, tracked: 1, forgotten: 0 };
 *   const [d] = rule.decide({ snapshot, track, sameSince: () => 1001 });
 *   d?.rule === "unnated" && [d.ageMs, d.provider, d.id]; // => [3000, "destinations", 7]
 * }
 * ```
 */
/** The `provider` of a decision the node's NAT rules made. */
export const NAT_RULES = "nat_rules";

export class UnnatedRule implements Rule<UnnatedDetails> {
  readonly name = "unnated";
  readonly afterMs: number;
  readonly synSentTimeoutS: number | undefined;
  readonly providers: readonly NatProvider[];

  constructor(o: UnnatedRuleOptions) {
    if (!(o.afterMs >= 0)) throw new RangeError(`afterMs must be >= 0, got ${o.afterMs}`);
    this.afterMs = o.afterMs;
    this.synSentTimeoutS = o.synSentTimeoutS;
    this.providers = o.providers;
  }

  wants(): SnapshotOptions | undefined {
    return mergeWants(this.providers.map((p) => p.wants?.()));
  }

  /** Un-NATed candidates old enough to delete: the NAT rules are asked about these. */
  natAsk(input: RuleInput): Candidate[] {
    return input.snapshot.candidates.filter((c) =>
      c.translated === undefined && this.ageMs(c, input.sameSince(c)) >= this.afterMs
    );
  }

  decide(input: RuleInput): Decision<UnnatedDetails>[] {
    const s = input.snapshot;
    for (const p of this.providers) p.observe?.(s);
    const out: Decision<UnnatedDetails>[] = [];
    for (const c of s.candidates) {
      if (c.translated !== undefined) continue;
      const sameSince = input.sameSince(c);
      const ageMs = this.ageMs(c, sameSince);
      if (ageMs < this.afterMs) {
        input.keep?.(c, `younger than --unnated-after (${age(ageMs)} of ${age(this.afterMs)})`);
        continue;
      }
      const decide = (reason: string, provider: string) =>
        out.push({
          rule: "unnated",
          tuple: toTuple(c),
          reason,
          ageMs,
          provider,
          ...(c.id !== undefined ? { id: c.id } : {}),
        });
      const nat = input.nat?.(c);
      // Where the node's NAT rules were read, they decide: nothing else may widen them.
      if (nat?.kind === "translated") {
        const to = nat.targets.map(formatTarget).join(", ");
        decide(
          `the node's NAT rules translate its next SYN (${nat.hooks.join(", ")}) to ${to}`,
          NAT_RULES,
        );
        continue;
      }
      if (nat?.kind === "not_proven") {
        input.keep?.(c, `the node's NAT rules do not prove its next SYN translated: ${nat.reason}`);
        continue;
      }
      const v = this.#vouch(c, sameSince, s.startedAt);
      if (v !== undefined) {
        decide(v.reason, v.by);
        continue;
      }
      input.keep?.(
        c,
        `${nat ? `the NAT rules are unreadable (${nat.reason}) and ` : ""}no provider vouches ` +
          `that the destination is NATed now (asked: ${
            this.providers.map((p) => p.name).join(", ")
          })`,
      );
    }
    return out;
  }

  /** Where the rules were not read: the first provider's "yes", in order. */
  #vouch(c: Candidate, sameSince: number | undefined, now: number) {
    for (const p of this.providers) {
      const v = p.vouch({ candidate: c, sameSince, now });
      if (v !== undefined) return { reason: v.reason, by: p.name };
    }
    return undefined;
  }

  /**
   * A lower bound of the candidate's age at the moment it was seen, in ms:
   * from the kernel's remaining timeout, or from `sameSince` (when the entry
   * was first seen unchanged), whichever says more.
   */
  ageMs(c: Candidate, sameSince: number | undefined): number {
    return candidateAgeMs(c, sameSince, this.synSentTimeoutS);
  }

  logFields(d: Decision<UnnatedDetails>): Record<string, unknown> {
    return { age_s: Math.round(d.ageMs) / 1000, provider: d.provider };
  }
}
