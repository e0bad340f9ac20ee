/**
 * The un-NATed rule, for kernels that no longer renew stuck entries: a TCP
 * `SYN_SENT` `[UNREPLIED]` entry whose destination was not translated, at
 * least `afterMs` old, toward a destination that is NATed now. Pure: the
 * candidates, the time and the answers of evidence look-ups come in,
 * decisions and the look-ups to make come out.
 *
 * "NATed now" is either
 * - a. configured: `--destinations` was given, and every candidate the agent
 *   considers is inside it (the agent scopes candidates before any rule); or
 * - b. evidence: the table holds an entry in the same zone with the same
 *   original destination address and port whose destination was translated.
 *   Translated candidates of the same snapshot count; for the rest the agent
 *   asks an {@linkcode EvidenceFinder} and this module caches the answers:
 *   positive ones for `positiveTtlMs`, negative ones for `negativeTtlMs`.
 *   Destinations already known to the rule are asked of the snapshot itself
 *   ({@linkcode UnnatedRule.watchList}): procfs answers in the same pass at
 *   no extra read, netlink with a dump beside the snapshot's.
 *
 * Age is a lower bound: the larger of what the kernel's remaining timeout
 * says (`synSentTimeoutS − timeout − 1` s, since the kernel rounds down) and
 * the time since the tracker first saw this entry unchanged.
 *
 * @module
 */
import type { Candidate, Snapshot } from "./snapshot.ts";
import { type Destination, destinationKey, type Endpoint, toTuple } from "./tuple.ts";
import type { DestinationSet } from "./destinations.ts";
import type { StaleDecision } from "./tracker.ts";

/**
 * Looks up, for each destination, an entry in the table that proves it is
 * NATed now. One call makes at most one read of the table per address family.
 */
export interface EvidenceFinder {
  /**
   * The translated entry found for each destination asked (by
   * {@linkcode destinationKey}): the reply source it was translated to.
   * Destinations without one are absent. Rejects when the table could not be
   * read: then nothing is known, and nothing is decided on it.
   */
  findEvidence(destinations: readonly Destination[], signal?: AbortSignal): Promise<
    Map<string, Endpoint>
  >;
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
  /**
   * `--destinations`, when given: rule a applies (the agent passes only
   * candidates inside it), and no evidence is looked up.
   */
  destinations: DestinationSet | undefined;
  /** How long a found translation counts as evidence; default 60 s. */
  positiveTtlMs?: number;
  /**
   * How long "no evidence" is believed before asking again; default and at
   * most 2 s. For a destination with a candidate younger than
   * `retryWindowMs` it is 1 s at most: its client still retries about once a
   * second (Linux 6.x: SYNs at 1, 2, 3, 4 s, then 2 s apart and more), and
   * the entry should be gone before the next SYN.
   */
  negativeTtlMs?: number;
  /** See `negativeTtlMs`; default 6 s. */
  retryWindowMs?: number;
  /** Destinations asked about at most per poll; default 1024. */
  maxLookups?: number;
}

/** What {@linkcode UnnatedRule.plan} found for one snapshot. */
export interface UnnatedPlan {
  /** Un-NATed candidates old enough, with their age and destination key. */
  eligible: { candidate: Candidate; ageMs: number; destKey: string }[];
  /** Destinations to look evidence up for (no fresh cached answer). */
  lookup: Destination[];
}

interface CachedAnswer {
  /** `undefined`: no evidence was found. */
  evidence: Endpoint | undefined;
  expires: number;
}

/**
 * The rule, with its evidence cache.
 *
 * @example
 * ```ts
 * import { UnnatedRule } from "./unnated.ts";
 * const rule = new UnnatedRule({ afterMs: 2000, synSentTimeoutS: 120, destinations: undefined });
 * const stuck = {
 *   family: "ipv4" as const, src: "192.0.2.7", dst: "198.51.100.80", sport: 40000, dport: 80,
 *   zone: 0, timeout: 110, seenFrom: 1000, seenTo: 1001,
 * };
 * const snapshot = { candidates: [stuck], scanned: 1, malformed: 0, startedAt: 1000, finishedAt: 1002 };
 * const plan = rule.plan(snapshot, () => undefined);
 * plan.lookup.length; // => 1: ask the table whether 198.51.100.80:80 is NATed now
 * rule.learn(plan.lookup, new Map([["ipv4 198.51.100.80 80 0", { addr: "10.244.0.5", port: 8080 }]]), 1002);
 * rule.decide(plan, 1002)[0]?.rule; // => "unnated"
 * ```
 */
export class UnnatedRule {
  readonly afterMs: number;
  readonly synSentTimeoutS: number | undefined;
  readonly destinations: DestinationSet | undefined;
  readonly positiveTtlMs: number;
  readonly negativeTtlMs: number;
  readonly retryWindowMs: number;
  readonly maxLookups: number;
  #cache = new Map<string, CachedAnswer>();
  /** Destinations of the last plan's eligible candidates (keys), to watch in the next read. */
  #watch = new Map<string, Destination>();
  /** Of those, the ones with a candidate still in its client's fast-retry window. */
  #young = new Set<string>();

  constructor(o: UnnatedRuleOptions) {
    if (!(o.afterMs >= 0)) throw new RangeError(`afterMs must be >= 0, got ${o.afterMs}`);
    this.afterMs = o.afterMs;
    this.synSentTimeoutS = o.synSentTimeoutS;
    this.destinations = o.destinations;
    this.positiveTtlMs = o.positiveTtlMs ?? 60_000;
    this.negativeTtlMs = Math.min(o.negativeTtlMs ?? 2_000, 2_000);
    this.retryWindowMs = o.retryWindowMs ?? 6_000;
    this.maxLookups = o.maxLookups ?? 1024;
  }

  /** Cached answers held now (positive and negative). */
  get cached(): number {
    return this.#cache.size;
  }

  /**
   * Finds the un-NATed candidates that are old enough and the destinations
   * that need evidence. Translated candidates of the snapshot are taken as
   * evidence on the way. `sameSince` is the tracker's
   * {@linkcode RenewalTracker.sameSince}.
   */
  plan(snapshot: Snapshot, sameSince: (c: Candidate) => number | undefined): UnnatedPlan {
    const now = snapshot.startedAt;
    this.#expire(now);
    const eligible: UnnatedPlan["eligible"] = [];
    for (const c of snapshot.candidates) {
      if (c.translated === undefined) continue;
      this.#cache.set(destinationKey(c), {
        evidence: c.translated,
        expires: now + this.positiveTtlMs,
      });
    }
    this.#watch.clear();
    this.#young.clear();
    for (const c of snapshot.candidates) {
      if (c.translated !== undefined) continue;
      const ageMs = this.ageMs(c, sameSince(c));
      if (ageMs < this.afterMs) continue;
      const destKey = destinationKey(c);
      eligible.push({ candidate: c, ageMs, destKey });
      if (this.destinations) continue;
      if (ageMs < this.retryWindowMs) this.#young.add(destKey);
      if (this.#watch.has(destKey) || this.#watch.size >= this.maxLookups) continue;
      this.#watch.set(destKey, { family: c.family, dst: c.dst, dport: c.dport, zone: c.zone });
    }
    // To look up now: the watched destinations without a cached answer.
    const lookup = [...this.#watch].filter(([k]) => !this.#cache.has(k)).map(([, d]) => d);
    return { eligible, lookup };
  }

  /**
   * Destinations to look up in the next read of the table, where a source
   * can do that on the way (procfs in the same pass, netlink beside it):
   * those of the last plan's eligible candidates whose answer is "none" and
   * runs out before `now + horizonMs` (or is missing). Empty with
   * `--destinations`.
   */
  watchList(now: number, horizonMs: number): Destination[] {
    const out: Destination[] = [];
    for (const [k, d] of this.#watch) {
      const a = this.#cache.get(k);
      if (a === undefined || (a.evidence === undefined && a.expires <= now + horizonMs)) {
        out.push(d);
      }
    }
    return out;
  }

  /**
   * A lower bound of the candidate's age at the moment it was seen, in ms:
   * from the kernel's remaining timeout, or from `sameSince` (when the entry
   * was first seen unchanged), whichever says more.
   */
  ageMs(c: Candidate, sameSince: number | undefined): number {
    const kernel = this.synSentTimeoutS === undefined
      ? 0
      : Math.max(0, this.synSentTimeoutS - c.timeout - 1) * 1000;
    const seen = sameSince === undefined ? 0 : Math.max(0, c.seenFrom - sameSince);
    return Math.max(kernel, seen);
  }

  /** Takes the answers of one look-up made at `now` for `asked`. */
  learn(asked: readonly Destination[], found: ReadonlyMap<string, Endpoint>, now: number): void {
    for (const d of asked) {
      const key = destinationKey(d);
      const evidence = found.get(key);
      const negative = this.#young.has(key)
        ? Math.min(1_000, this.negativeTtlMs)
        : this.negativeTtlMs;
      this.#cache.set(key, {
        evidence,
        expires: now + (evidence === undefined ? negative : this.positiveTtlMs),
      });
    }
  }

  /** The eligible candidates whose destination is NATed now, as decisions. */
  decide(plan: UnnatedPlan, now: number): StaleDecision[] {
    const out: StaleDecision[] = [];
    for (const { candidate: c, ageMs, destKey } of plan.eligible) {
      let reason: string;
      if (this.destinations) {
        const item = this.destinations.match(c.family, c.dst, c.dport);
        if (item === undefined) continue; // the agent scopes first; never act outside
        reason = `destination inside --destinations item ${item.text}`;
      } else {
        const a = this.#cache.get(destKey);
        if (a === undefined || a.expires <= now || a.evidence === undefined) continue;
        const e = a.evidence;
        reason = `destination is NATed now: an entry to it was translated to ${
          e.addr.includes(":") ? `[${e.addr}]` : e.addr
        }:${e.port}`;
      }
      out.push({
        tuple: toTuple(c),
        rule: "unnated",
        reason,
        renewals: 0,
        trackedMs: ageMs,
        ageMs,
        ...(c.id !== undefined ? { id: c.id } : {}),
      });
    }
    return out;
  }

  #expire(now: number): void {
    for (const [k, a] of this.#cache) if (a.expires <= now) this.#cache.delete(k);
  }
}
