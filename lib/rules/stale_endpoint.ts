/**
 * The stale-endpoint rule (Kubernetes): a *translated* TCP `SYN_SENT`
 * `[UNREPLIED]` entry toward a Service address whose translated destination
 * (the reply source) stopped being a serving endpoint of that Service is
 * stuck the same way as an un-NATed one: the client's retransmits keep
 * matching it and keep going to a pod that is gone (or, where pod IPs are
 * reused within seconds, to whichever pod got that IP). kube-proxy clears
 * such UDP entries, not TCP ones.
 *
 * Deleted only when all hold, each keeping a working connection safe:
 * - the Kubernetes view is **live** (both watches open): a removal missed, or
 *   an endpoint added while the watch was down, must not read as "gone";
 * - the endpoint was **seen serving, then removed** from the Service's
 *   EndpointSlices or marked `serving: false`, and is not serving behind any
 *   Service port at that address now: an endpoint the agent never saw
 *   serving (one added a moment ago, not yet delivered by the watch) is
 *   never taken for a stale one;
 * - the entry is at least `afterMs` old (`--unnated-after`): an endpoint
 *   that is terminating may still answer a SYN late.
 *
 * @module
 */
import type { Candidate } from "../model/snapshot.ts";
import { toTuple } from "../model/tuple.ts";
import {
  candidateAgeMs,
  type Decision,
  type Rule,
  type RuleInput,
  secondsText as age,
} from "./rule.ts";

/** What the rule asks of the Kubernetes view (lib/kube/services.ts's `KubeServices`). */
export interface RemovedEndpoints {
  /** See `KubeServices.removedAt`. */
  removedAt(
    addr: string,
    port: number,
    endpoint: string,
  ): { at: number; service: string } | undefined;
}

/** The stale-endpoint rule's details of a decision. */
export interface StaleEndpointDetails {
  rule: "stale_endpoint";
  /** How old the entry is at least, in milliseconds. */
  ageMs: number;
  /** The Service (`namespace/name`) whose endpoint it was. */
  service: string;
  /** The endpoint it was translated to, `addr:port`. */
  endpoint: string;
}

/** Options for {@linkcode StaleEndpointRule}. */
export interface StaleEndpointRuleOptions {
  /** Minimum age, in milliseconds (`--unnated-after`). */
  afterMs: number;
  /** The kernel's `nf_conntrack_tcp_timeout_syn_sent`, in seconds; `undefined` when unknown. */
  synSentTimeoutS: number | undefined;
  endpoints: RemovedEndpoints;
}

/**
 * See the module comment.
 *
 * @example
 * ```ts
 * import { StaleEndpointRule } from "./stale_endpoint.ts";
 * const rule = new StaleEndpointRule({
 *   afterMs: 2000,
 *   synSentTimeoutS: 120,
 *   endpoints: { removedAt: (_a, _p, e) => (e === "10.244.1.5 8080" ? { at: 500, service: "web/shop" } : undefined) },
 * });
 * const stuck = {
 *   family: "ipv4" as const, src: "10.1.0.7", dst: "10.96.0.10", sport: 40000, dport: 80, zone: 0,
 *   timeout: 116, seenFrom: 1000, seenTo: 1001, id: 9, translated: { addr: "10.244.1.5", port: 8080 },
 * };
 * const snapshot = { candidates: [stuck], scanned: 1, malformed: 0, startedAt: 1000, finishedAt: 1002 };
 * const track = { stale: [], renewals: 0, tracked: 1, forgotten: 0 };
 * const [d] = rule.decide({ snapshot, track, sameSince: () => 1001 });
 * d?.reason; // => "translated to 10.244.1.5:8080, no longer a serving endpoint of Service web/shop"
 * ```
 */
export class StaleEndpointRule implements Rule<StaleEndpointDetails> {
  readonly name = "stale_endpoint";
  #o: StaleEndpointRuleOptions;

  constructor(o: StaleEndpointRuleOptions) {
    if (!(o.afterMs >= 0)) throw new RangeError(`afterMs must be >= 0, got ${o.afterMs}`);
    this.#o = o;
  }

  decide(input: RuleInput): Decision<StaleEndpointDetails>[] {
    const out: Decision<StaleEndpointDetails>[] = [];
    for (const c of input.snapshot.candidates) {
      const t = c.translated;
      if (t === undefined) continue;
      const ageMs = this.ageMs(c, input.sameSince(c));
      if (ageMs < this.#o.afterMs) {
        input.keep?.(c, `younger than --unnated-after (${age(ageMs)} of ${age(this.#o.afterMs)})`);
        continue;
      }
      const endpoint = `${t.addr} ${t.port}`;
      const removed = this.#o.endpoints.removedAt(c.dst, c.dport, endpoint);
      const shown = t.addr.includes(":") ? `[${t.addr}]:${t.port}` : `${t.addr}:${t.port}`;
      if (removed === undefined) {
        input.keep?.(
          c,
          `translated to ${shown}, not an endpoint seen serving and since removed ` +
            "(or the Kubernetes view is not live)",
        );
        continue;
      }
      out.push({
        rule: "stale_endpoint",
        tuple: toTuple(c),
        reason:
          `translated to ${shown}, no longer a serving endpoint of Service ${removed.service}`,
        ageMs,
        service: removed.service,
        endpoint: shown,
        ...(c.id !== undefined ? { id: c.id } : {}),
      });
    }
    return out;
  }

  /** As the un-NATed rule counts it: the kernel's remaining timeout or the time since first seen. */
  ageMs(c: Candidate, sameSince: number | undefined): number {
    return candidateAgeMs(c, sameSince, this.#o.synSentTimeoutS);
  }

  logFields(d: Decision<StaleEndpointDetails>): Record<string, unknown> {
    return { age_s: Math.round(d.ageMs) / 1000, service: d.service, endpoint: d.endpoint };
  }
}
