/**
 * The stale-translation rule: a TCP `SYN_SENT` `[UNREPLIED]` entry that was
 * destination-NATed to X (a container or pod since replaced), at least
 * `afterMs` old, whose client's next SYN the node's NAT rules translate now
 * to T, with X not in T. Deleting it lets that next SYN be translated
 * afresh, to a live endpoint.
 *
 * Only the node's rules decide (`input.nat`, lib/nat/verdicts.ts): an entry
 * NATed by anything they do not prove (`not_proven`: a rule the agent cannot
 * evaluate, IPVS, a REDIRECT to an unknown address; `unreadable`) is never
 * touched, and X in T (the same endpoint, or one the rules may still pick)
 * keeps it.
 *
 * @example
 * ```ts
 * import { StaleTranslationRule } from "./stale_translation.ts";
 * const rule = new StaleTranslationRule({ afterMs: 2000, synSentTimeoutS: 120 });
 * const stuck = {
 *   family: "ipv4" as const, src: "192.0.2.7", dst: "198.51.100.80", sport: 40000, dport: 80,
 *   zone: 0, timeout: 116, seenFrom: 1000, seenTo: 1001, id: 7,
 *   translated: { addr: "10.244.1.5", port: 8080 },
 * };
 * const live = new Uint8Array([10, 244, 2, 9]);
 * const snapshot = { candidates: [stuck], scanned: 1, malformed: 0, startedAt: 1000, finishedAt: 1002 };
 * const track = { stale: [], renewals: 0, tracked: 1, forgotten: 0 };
 * const nat = () => ({
 *   kind: "translated" as const, hooks: ["prerouting" as const],
 *   targets: [{ addrMin: live, addrMax: live, portMin: 8080, portMax: 8080 }],
 * });
 * const input = { snapshot, track, sameSince: () => 1001, nat };
 * rule.natAsk(input).length; // => 1
 * const [d] = rule.decide(input);
 * [d?.rule, d?.translatedTo, d?.id]; // => ["stale_translation", "10.244.1.5:8080", 7]
 * ```
 *
 * @module
 */
import { addressBytes } from "../model/addr.ts";
import type { Candidate } from "../model/snapshot.ts";
import { toTuple } from "../model/tuple.ts";
import { formatTarget, targetsContain } from "../nat/targets.ts";
import {
  candidateAgeMs,
  type Decision,
  type Rule,
  type RuleInput,
  secondsText as age,
} from "./rule.ts";

/** The stale-translation rule's details of a decision. */
export interface StaleTranslationDetails {
  rule: "stale_translation";
  /** How old the entry is at least, in milliseconds. */
  ageMs: number;
  /** Where the entry was translated to, `addr:port`. */
  translatedTo: string;
}

/** Options for {@linkcode StaleTranslationRule}. */
export interface StaleTranslationOptions {
  /** Minimum age, in milliseconds (`--unnated-after`). */
  afterMs: number;
  /** The kernel's `SYN_SENT` timeout in seconds; `undefined` when unknown. */
  synSentTimeoutS: number | undefined;
}

/** The rule. */
export class StaleTranslationRule implements Rule<StaleTranslationDetails> {
  readonly name = "stale_translation";
  readonly #o: StaleTranslationOptions;

  constructor(o: StaleTranslationOptions) {
    if (!(o.afterMs >= 0)) throw new RangeError(`afterMs must be >= 0, got ${o.afterMs}`);
    this.#o = o;
  }

  #ageMs(c: Candidate, input: RuleInput): number {
    return candidateAgeMs(c, input.sameSince(c), this.#o.synSentTimeoutS);
  }

  /** Translated candidates old enough to delete: the NAT rules are asked about these. */
  natAsk(input: RuleInput): Candidate[] {
    return input.snapshot.candidates.filter((c) =>
      c.translated !== undefined && this.#ageMs(c, input) >= this.#o.afterMs
    );
  }

  decide(input: RuleInput): Decision<StaleTranslationDetails>[] {
    const out: Decision<StaleTranslationDetails>[] = [];
    for (const c of input.snapshot.candidates) {
      const x = c.translated;
      if (x === undefined) continue;
      const ageMs = this.#ageMs(c, input);
      const shown = x.addr.includes(":") ? `[${x.addr}]:${x.port}` : `${x.addr}:${x.port}`;
      if (ageMs < this.#o.afterMs) {
        input.keep?.(c, `younger than --unnated-after (${age(ageMs)} of ${age(this.#o.afterMs)})`);
        continue;
      }
      const nat = input.nat?.(c);
      if (nat?.kind !== "translated") {
        input.keep?.(
          c,
          `translated to ${shown}; the node's NAT rules do not prove where its next SYN goes (${
            nat === undefined ? "not read" : nat.reason
          })`,
        );
        continue;
      }
      const addr = addressBytes(c.family, x.addr);
      // An address that does not parse is never "outside T": keep.
      if (addr === undefined || targetsContain(nat.targets, addr, x.port)) {
        input.keep?.(c, `translated to ${shown}, where the node's NAT rules may still send it`);
        continue;
      }
      out.push({
        rule: "stale_translation",
        tuple: toTuple(c),
        reason: `translated to ${shown}; the node's NAT rules now translate its next SYN to ${
          nat.targets.map(formatTarget).join(", ")
        }`,
        ageMs,
        translatedTo: shown,
        ...(c.id !== undefined ? { id: c.id } : {}),
      });
    }
    return out;
  }

  logFields(d: Decision<StaleTranslationDetails>): Record<string, unknown> {
    return { age_s: Math.round(d.ageMs) / 1000, translated_to: d.translatedTo };
  }
}
