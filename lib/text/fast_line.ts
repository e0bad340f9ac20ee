/**
 * The fast path for the commonest candidate line: parses it straight from the
 * bytes, without decoding the line or splitting it into tokens.
 *
 * It knows exactly one shape, the one the kernel prints for a plain
 * `SYN_SENT` `[UNREPLIED]` TCP entry:
 *
 * ```
 * ipv4     2 tcp      6 117 SYN_SENT src=A dst=B sport=P dport=Q [UNREPLIED]
 *   src=B dst=A sport=Q dport=P [mark=M] [zone=Z] use=U
 * ```
 *
 * with IPv6 addresses in the kernel's uncompressed lower-case spelling.
 * Anything else (counters, `zone-orig=`, `secctx=`, compressed IPv6, upper-case
 * hex, …) gets `undefined`: "not sure", and {@linkcode parseLine} decides.
 * So it never accepts a line the full parser would reject, and gives the same
 * fields when it accepts one (tests/text/fast_line_test.ts checks both).
 *
 * @module
 */
import { formatIPv6 } from "../model/addr.ts";
import type { Candidate } from "../model/snapshot.ts";
import type { Family } from "../model/tuple.ts";

const SP = 32;
const enc = (s: string) => new TextEncoder().encode(s);
const IPV4 = enc("ipv4     2 tcp      6 ");
const IPV6 = enc("ipv6     10 tcp      6 ");
const SYN_SENT = enc("SYN_SENT ");
const SRC = enc("src=");
const DST = enc("dst=");
const SPORT = enc("sport=");
const DPORT = enc("dport=");
const UNREPLIED = enc("[UNREPLIED] ");
const MARK = enc("mark=");
const ZONE = enc("zone=");
const USE = enc("use=");

/** Parsing state: the cursor, so helpers can advance it. */
class Cursor {
  constructor(readonly buf: Uint8Array, public p: number, readonly end: number) {}

  /** Consumes `pat` if it is next. */
  take(pat: Uint8Array): boolean {
    const { buf, p } = this;
    if (this.end - p < pat.length) return false;
    for (let i = 0; i < pat.length; i++) if (buf[p + i] !== pat[i]) return false;
    this.p += pat.length;
    return true;
  }

  /** A decimal without sign or leading zero, at most `max`, then a space (or the end, if `last`). */
  uint(max: number, last = false): number {
    const { buf, end } = this;
    let p = this.p, v = 0;
    const from = p;
    while (p < end && buf[p]! >= 48 && buf[p]! <= 57) {
      v = v * 10 + (buf[p]! - 48);
      if (v > max) return -1;
      p++;
    }
    const n = p - from;
    if (n === 0 || (n > 1 && buf[from] === 48)) return -1;
    if (last ? p !== end : p >= end || buf[p] !== SP) return -1;
    this.p = last ? p : p + 1;
    return v;
  }

  /**
   * An address of `family` and the space after it; `undefined` when not the
   * kernel's own spelling. With `keep` false it is only checked (`""`).
   */
  addr(family: Family, keep = true): string | undefined {
    return family === "ipv4" ? this.#v4(keep) : this.#v6(keep);
  }

  #v4(keep: boolean): string | undefined {
    const { buf, end } = this;
    const first = this.p;
    let p = first;
    for (let octet = 0; octet < 4; octet++) {
      let v = 0;
      const from = p;
      while (p < end && buf[p]! >= 48 && buf[p]! <= 57 && p - from < 3) {
        v = v * 10 + (buf[p++]! - 48);
      }
      const n = p - from;
      if (n === 0 || v > 255 || (n > 1 && buf[from] === 48)) return undefined;
      const sep = octet === 3 ? SP : 46; // '.'
      if (p >= end || buf[p] !== sep) return undefined;
      p++;
    }
    this.p = p;
    // The kernel's dotted quad is already canonical: take its bytes as one flat string.
    return keep
      ? String.fromCharCode.apply(null, buf.subarray(first, p - 1) as unknown as number[])
      : "";
  }

  #v6(keep: boolean): string | undefined {
    const { buf } = this;
    const p = this.p;
    if (this.end - p < 40 || buf[p + 39] !== SP) return undefined;
    const groups = new Array<number>(8);
    for (let g = 0; g < 8; g++) {
      let v = 0;
      for (let i = 0; i < 4; i++) {
        const c = buf[p + g * 5 + i]!;
        const h = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
        if (h < 0) return undefined;
        v = (v << 4) | h;
      }
      if (g < 7 && buf[p + g * 5 + 4] !== 58) return undefined; // ':'
      groups[g] = v;
    }
    this.p = p + 40;
    return keep ? formatIPv6(groups) : "";
  }
}

/**
 * Parses a plain candidate line in `buf[start, end)` (no newline), seen by the
 * kernel between `seenFrom` and `seenTo`, or returns `undefined` when it is
 * anything but that exact shape.
 *
 * @example
 * ```ts
 * import { fastCandidate } from "./fast_line.ts";
 * const line = new TextEncoder().encode(
 *   "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 " +
 *     "[UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=0 use=2",
 * );
 * fastCandidate(line, 0, line.length)?.sport; // => 40000
 * ```
 */
export function fastCandidate(
  buf: Uint8Array,
  start: number,
  end: number,
  seenFrom = 0,
  seenTo = 0,
): Candidate | undefined {
  const c = new Cursor(buf, start, end);
  let family: Family;
  if (c.take(IPV4)) family = "ipv4";
  else if (c.take(IPV6)) family = "ipv6";
  else return undefined;
  const timeout = c.uint(4294967295);
  if (timeout < 0 || !c.take(SYN_SENT)) return undefined;
  if (!c.take(SRC)) return undefined;
  const src = c.addr(family);
  if (src === undefined || !c.take(DST)) return undefined;
  const dstAt = c.p;
  const dst = c.addr(family);
  if (dst === undefined) return undefined;
  const dstEnd = c.p;
  if (!c.take(SPORT)) return undefined;
  const sport = c.uint(65535);
  if (sport < 0 || !c.take(DPORT)) return undefined;
  const dport = c.uint(65535);
  if (dport < 0 || !c.take(UNREPLIED)) return undefined;
  // The reply tuple is checked as strictly; only its source is kept, and only
  // when it differs from the original destination (the destination was NATed).
  if (!c.take(SRC)) return undefined;
  const replyAt = c.p;
  if (c.addr(family, false) === undefined) return undefined;
  const replyEnd = c.p;
  if (!c.take(DST) || c.addr(family, false) === undefined) return undefined;
  if (!c.take(SPORT)) return undefined;
  const replySport = c.uint(65535);
  if (replySport < 0 || !c.take(DPORT) || c.uint(65535) < 0) return undefined;
  if (c.take(MARK) && c.uint(4294967295) < 0) return undefined;
  let zone = 0;
  if (c.take(ZONE) && (zone = c.uint(65535)) < 0) return undefined;
  if (!c.take(USE) || c.uint(4294967295, true) < 0) return undefined;
  const cand: Candidate = { family, src, dst, sport, dport, zone, timeout, seenFrom, seenTo };
  // Both addresses are in the kernel's one spelling: equal bytes, equal addresses.
  if (replySport !== dport || !sameBytes(buf, dstAt, dstEnd, replyAt, replyEnd)) {
    cand.translated = { addr: new Cursor(buf, replyAt, end).addr(family)!, port: replySport };
  }
  return cand;
}

/** `buf[a, aEnd)` and `buf[b, bEnd)` hold the same bytes. */
function sameBytes(buf: Uint8Array, a: number, aEnd: number, b: number, bEnd: number): boolean {
  if (aEnd - a !== bEnd - b) return false;
  for (let i = 0; i < aEnd - a; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}
