/**
 * The `--destinations` provider: the operator says which destinations are
 * NATed (or otherwise safe to free) for every client. Candidates outside the
 * list never reach a rule (the agent scopes them out first); this provider
 * checks again, so that neither layer alone lets anything outside through.
 *
 * @module
 */
import type { DestinationSet } from "../../model/destination_set.ts";
import type { NatProvider, Vouch, VouchQuery } from "./provider.ts";

/**
 * Vouches for every candidate whose destination is inside the list.
 *
 * @example
 * ```ts
 * import { DestinationsProvider } from "./destinations.ts";
 * import { parseDestinations } from "../../model/destination_set.ts";
 * const set = parseDestinations("10.96.0.0/12:80");
 * if (typeof set !== "string") {
 *   const p = new DestinationsProvider(set);
 *   const candidate = {
 *     family: "ipv4" as const, src: "10.1.0.7", dst: "10.96.0.10", sport: 40000, dport: 80, zone: 0,
 *     timeout: 110, seenFrom: 0, seenTo: 1,
 *   };
 *   p.vouch({ candidate, sameSince: 1, now: 0 })?.reason;
 *   // => "destination inside --destinations item 10.96.0.0/12:80"
 * }
 * ```
 */
export class DestinationsProvider implements NatProvider {
  readonly name = "destinations";
  readonly destinations: DestinationSet;

  constructor(destinations: DestinationSet) {
    this.destinations = destinations;
  }

  vouch({ candidate: c }: VouchQuery): Vouch | undefined {
    const item = this.destinations.match(c.family, c.dst, c.dport);
    return item === undefined
      ? undefined
      : { reason: `destination inside --destinations item ${item.text}` };
  }
}
