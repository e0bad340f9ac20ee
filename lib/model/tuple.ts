/**
 * Conntrack tuples: the identity of an entry the agent tracks and deletes,
 * the one parser that validates a tuple and spells its addresses
 * canonically ({@linkcode parseTuple}), and the keys of tuples and
 * destinations.
 *
 * @module
 */
import { canonicalIPv6, parseIPv4 } from "./addr.ts";

/** Address family of a tuple, spelled the way `conntrack -f` wants it. */
export type Family = "ipv4" | "ipv6";

/**
 * The identity of a conntrack entry as the agent tracks and deletes it: the
 * original-direction TCP tuple plus the zone the kernel looks it up in.
 *
 * Addresses are canonical: IPv4 dotted quad without leading zeros, IPv6 in
 * the RFC 5952 compressed lower-case form, so one tuple has exactly one key.
 */
export interface Tuple {
  family: Family;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** The zone of the original direction (0 when the table shows none). */
  zone: number;
}

declare const parsed: unique symbol;

/**
 * A tuple that {@linkcode parseTuple} accepted: family `ipv4` or `ipv6`,
 * canonical addresses of that family, ports and zone integers in 0-65535.
 * Only `parseTuple` makes one, so code that takes a `ParsedTuple` (the
 * deleters' request builders) trusts it and checks nothing again.
 */
export type ParsedTuple = Readonly<Tuple> & { readonly [parsed]: true };

/** What {@linkcode parseTuple} answers: the parsed tuple, or why the input is not one. */
export type TupleParse = { ok: true; tuple: ParsedTuple } | { ok: false; problem: string };

/**
 * The one tuple parser: checks every field of `raw` (which may come from
 * anywhere, so each field is `unknown`) and returns a {@linkcode ParsedTuple}
 * with canonical addresses (IPv4 as a strict dotted quad, IPv6 in any
 * spelling, returned in RFC 5952 form), or why it is not a tuple.
 *
 * @example
 * ```ts
 * import { parseTuple } from "./tuple.ts";
 * const r = parseTuple({ family: "ipv6", src: "2001:DB8::0:1", dst: "::1", sport: 40000, dport: 443, zone: 0 });
 * r.ok && r.tuple.src; // => "2001:db8::1"
 * parseTuple({ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 70000, dport: 80, zone: 0 });
 * // => { ok: false, problem: "bad sport 70000 (not in 0-65535)" }
 * ```
 */
export function parseTuple(raw: { readonly [K in keyof Tuple]: unknown }): TupleParse {
  const family = raw.family;
  if (family !== "ipv4" && family !== "ipv6") {
    return { ok: false, problem: `bad family ${JSON.stringify(family)}` };
  }
  const src = canonicalAddress(family, raw.src);
  if (src === undefined) {
    return { ok: false, problem: `bad ${family} src ${JSON.stringify(raw.src)}` };
  }
  const dst = canonicalAddress(family, raw.dst);
  if (dst === undefined) {
    return { ok: false, problem: `bad ${family} dst ${JSON.stringify(raw.dst)}` };
  }
  for (const k of ["sport", "dport", "zone"] as const) {
    const v = raw[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff) {
      return { ok: false, problem: `bad ${k} ${JSON.stringify(v)} (not in 0-65535)` };
    }
  }
  const tuple = {
    family,
    src,
    dst,
    sport: raw.sport as number,
    dport: raw.dport as number,
    zone: raw.zone as number,
  };
  return { ok: true, tuple: tuple as ParsedTuple };
}

/** Canonical text of an address of `family`, or `undefined`. */
function canonicalAddress(family: Family, a: unknown): string | undefined {
  if (typeof a !== "string") return undefined;
  if (family === "ipv4") return parseIPv4(a) === undefined ? undefined : a;
  // An IPv6 address has a colon; a bare dotted quad is not one.
  return a.includes(":") ? canonicalIPv6(a) : undefined;
}

/** An address and port, as the reply tuple's source names them. */
export interface Endpoint {
  addr: string;
  port: number;
}

/** Where a client connects to: the original destination address and port, in a zone. */
export interface Destination {
  family: Family;
  dst: string;
  dport: number;
  zone: number;
}

/**
 * A string that identifies a tuple: family, addresses, ports and zone.
 *
 * @example
 * ```ts
 * import { tupleKey } from "./tuple.ts";
 * tupleKey({ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 });
 * // => "ipv4 10.0.0.1 10.0.0.2 40000 80 0"
 * ```
 */
export function tupleKey(t: Tuple): string {
  return `${t.family} ${t.src} ${t.dst} ${t.sport} ${t.dport} ${t.zone}`;
}

/**
 * A string that identifies a destination: family, address, port and zone.
 *
 * @example
 * ```ts
 * import { destinationKey } from "./tuple.ts";
 * destinationKey({ family: "ipv4", dst: "10.96.0.10", dport: 53, zone: 0 });
 * // => "ipv4 10.96.0.10 53 0"
 * ```
 */
export function destinationKey(d: Destination): string {
  return `${d.family} ${d.dst} ${d.dport} ${d.zone}`;
}

/**
 * Whose path to where: a client address toward a destination address and
 * port, in a zone. The un-NATed rule's table evidence is asked and kept by
 * this key: only an entry with the same key speaks for the client's path.
 */
export interface ClientKey extends Destination {
  src: string;
}

/**
 * A string that identifies a {@linkcode ClientKey}: family, source and
 * destination address, destination port, zone.
 *
 * @example
 * ```ts
 * import { clientKey } from "./tuple.ts";
 * clientKey({ family: "ipv4", src: "10.1.0.7", dst: "10.96.0.10", dport: 80, zone: 0 });
 * // => "ipv4 10.1.0.7 10.96.0.10 80 0"
 * ```
 */
export function clientKey(k: ClientKey): string {
  return `${k.family} ${k.src} ${k.dst} ${k.dport} ${k.zone}`;
}

/** Copies only the tuple fields of a candidate (or anything wider). */
export function toTuple(t: Tuple): Tuple {
  return {
    family: t.family,
    src: t.src,
    dst: t.dst,
    sport: t.sport,
    dport: t.dport,
    zone: t.zone,
  };
}
