/**
 * One decoded entry → what the rules see of it: a {@linkcode Candidate}
 * (the netlink source and the events source keep these) and where its
 * destination was translated to. Pure; no I/O.
 *
 * @module
 */
import { formatAddress } from "../model/addr.ts";
import type { Candidate } from "../model/snapshot.ts";
import type { Endpoint } from "../model/tuple.ts";
import { type ConntrackEntry, entryTuple } from "./conntrack_entry.ts";

/**
 * Where the entry's destination was translated to: the reply source, when it
 * differs from the original destination address or port; `undefined` for an
 * un-NATed entry. An entry without a reply tuple counts as translated to
 * nowhere (`::`/`0.0.0.0` port 0) rather than as un-NATed: never a guess that
 * lets something be deleted.
 *
 * @example
 * ```ts
 * import { translation } from "./entry_candidate.ts";
 * translation({
 *   family: "ipv4", proto: 6, srcAddr: new Uint8Array([10, 0, 0, 1]), dstAddr: new Uint8Array([10, 96, 0, 1]),
 *   dport: 80, replySrcAddr: new Uint8Array([10, 244, 1, 5]), replySport: 8080, zone: 0, replyZone: 0, status: 40,
 * }); // => { addr: "10.244.1.5", port: 8080 }
 * ```
 */
export function translation(e: ConntrackEntry): Endpoint | undefined {
  const r = e.replySrcAddr;
  if (r === undefined || e.replySport === undefined) {
    return { addr: e.family === "ipv4" ? "0.0.0.0" : "::", port: 0 };
  }
  let same = r.length === e.dstAddr.length && e.replySport === e.dport;
  for (let i = 0; same && i < r.length; i++) same = r[i] === e.dstAddr[i];
  return same ? undefined : { addr: formatAddress(r), port: e.replySport };
}

/**
 * The {@linkcode Candidate} of an entry that passed `isSynSentUnreplied`,
 * seen between `from` and `to`; `undefined` when it has no reply tuple
 * (whether its destination was NATed cannot be told).
 *
 * @example
 * ```ts
 * import { entryCandidate } from "./entry_candidate.ts";
 * entryCandidate({
 *   family: "ipv4", proto: 6, srcAddr: new Uint8Array([10, 0, 0, 1]), dstAddr: new Uint8Array([10, 0, 0, 2]),
 *   sport: 40000, dport: 80, replySrcAddr: new Uint8Array([10, 0, 0, 2]), replySport: 80,
 *   zone: 0, replyZone: 0, status: 8, tcpState: 1, timeout: 117, id: 7,
 * }, 1, 2)?.timeout; // => 117
 * ```
 */
export function entryCandidate(e: ConntrackEntry, from: number, to: number): Candidate | undefined {
  if (e.replySrcAddr === undefined || e.replySport === undefined) return undefined;
  const c: Candidate = { ...entryTuple(e), timeout: e.timeout!, seenFrom: from, seenTo: to };
  if (e.id !== undefined) c.id = e.id;
  const translated = translation(e);
  if (translated !== undefined) c.translated = translated;
  return c;
}
