/**
 * One line of the conntrack table (`/proc/net/nf_conntrack`, or
 * `conntrack -L -o extended`) → a TCP entry, a line that is not TCP, or a
 * reject with its reason.
 *
 * The format is the kernel's `ct_seq_show()` (net/netfilter/
 * nf_conntrack_standalone.c), field by field:
 *
 * ```
 * <l3name> <l3num> <l4name> <l4num> [<timeout>] <STATE>
 *   src= dst= sport= dport= [zone-orig=] [packets= bytes=] [[UNREPLIED]]
 *   src= dst= sport= dport= [zone-reply=] [packets= bytes=]
 *   [[ASSURED]|[OFFLOAD]|[HW_OFFLOAD]] [mark=] [secctx=] [zone=] [delta-time=] use=
 * ```
 *
 * The parser is total: it never throws, whatever the input.
 *
 * @module
 */
import { canonicalIPv4, canonicalIPv6 } from "../model/addr.ts";
import type { Candidate } from "../model/snapshot.ts";
import type { Family } from "../model/tuple.ts";

/** The TCP states the kernel names (`tcp_conntrack_names`). */
export const TCP_STATES: ReadonlySet<string> = new Set([
  "NONE",
  "SYN_SENT",
  "SYN_RECV",
  "ESTABLISHED",
  "FIN_WAIT",
  "CLOSE_WAIT",
  "LAST_ACK",
  "TIME_WAIT",
  "CLOSE",
  "SYN_SENT2",
]);

/** One direction's TCP tuple. */
export interface Direction {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

/** A fully parsed TCP line. Addresses are canonical (see {@linkcode canonicalIPv6}). */
export interface TcpEntry {
  family: Family;
  /** Seconds left, rounded down; `undefined` for offloaded entries (the kernel prints none). */
  timeout: number | undefined;
  state: string;
  original: Direction;
  reply: Direction;
  /** Zone of the original direction: `zone=` or `zone-orig=`, else 0. */
  zone: number;
  /** Zone of the reply direction: `zone=` or `zone-reply=`, else 0. */
  replyZone: number;
  unreplied: boolean;
  /** `ASSURED`, `OFFLOAD`, `HW_OFFLOAD`, or `undefined`. */
  flag: string | undefined;
  mark: number | undefined;
  use: number;
}

/** What {@linkcode parseLine} makes of a line. */
export type ParsedLine =
  | { kind: "tcp"; entry: TcpEntry }
  /** A well-formed header of another protocol (UDP, ICMP, …): not looked at further. */
  | { kind: "other"; protocol: string }
  | { kind: "malformed"; reason: string };

const DIGITS = /^(0|[1-9][0-9]{0,19})$/;
const HEADER = /^([a-z0-9]{1,16}) +([0-9]{1,3}) +([a-z0-9-]{1,16}) +([0-9]{1,3}) (.*)$/s;
const MAX_U32 = 4294967295;

/** A decimal integer without sign or leading zeros, at most `max`, else `undefined`. */
export function parseUint(s: string, max: number): number | undefined {
  if (!DIGITS.test(s)) return undefined;
  const v = Number(s);
  return v <= max ? v : undefined;
}

/**
 * Parses one table line (without its newline).
 *
 * @example
 * ```ts
 * import { parseLine } from "./parse.ts";
 * const r = parseLine(
 *   "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 " +
 *     "[UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=0 use=2",
 * );
 * if (r.kind === "tcp") r.entry.state; // => "SYN_SENT"
 * ```
 */
export function parseLine(line: string): ParsedLine {
  if (line.length > 4096) return bad("line longer than 4096 characters");
  // The names are padded to 8 columns (`%-8s %u %-8s %u `); after that, one space between fields.
  const h = HEADER.exec(line);
  if (h === null) return bad(`bad header ${quote(line.slice(0, 40))}`);
  // every group of HEADER is mandatory
  const [, l3, l3num, l4, l4num, rest] = h as unknown as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  let family: Family;
  if (l3 === "ipv4" && l3num === "2") family = "ipv4";
  else if (l3 === "ipv6" && l3num === "10") family = "ipv6";
  else return bad(`unknown address family ${quote(l3)} ${quote(l3num)}`);
  if (parseUint(l4num, 255) === undefined) return bad(`bad protocol number ${quote(l4num)}`);
  if (l4 !== "tcp") return { kind: "other", protocol: l4 };
  if (l4num !== "6") return bad(`tcp with protocol number ${quote(l4num)}`);
  const t = rest.split(" ");
  if (t.includes("")) return bad("unexpected spacing between fields");
  let i = 0;

  let timeout: number | undefined;
  if (t[i] !== undefined && /^[0-9]/.test(t[i]!)) {
    timeout = parseUint(t[i]!, MAX_U32);
    if (timeout === undefined) return bad(`bad timeout ${quote(t[i])}`);
    i++;
  }
  const state = t[i++];
  if (state === undefined || !TCP_STATES.has(state)) return bad(`bad TCP state ${quote(state)}`);

  const orig = parseDirection(t, i, family);
  if (typeof orig === "string") return bad(`original tuple: ${orig}`);
  i += 4;
  let zone: number | undefined;
  if (t[i]?.startsWith("zone-orig=")) {
    zone = parseUint(t[i]!.slice(10), 65535);
    if (zone === undefined) return bad(`bad zone ${quote(t[i])}`);
    i++;
  }
  i = skipCounters(t, i);
  if (i < 0) return bad("bad packets=/bytes= counters");
  let unreplied = false;
  if (t[i] === "[UNREPLIED]") {
    unreplied = true;
    i++;
  }
  const reply = parseDirection(t, i, family);
  if (typeof reply === "string") return bad(`reply tuple: ${reply}`);
  i += 4;
  let replyZone: number | undefined;
  if (t[i]?.startsWith("zone-reply=")) {
    replyZone = parseUint(t[i]!.slice(11), 65535);
    if (replyZone === undefined) return bad(`bad zone ${quote(t[i])}`);
    i++;
  }
  i = skipCounters(t, i);
  if (i < 0) return bad("bad packets=/bytes= counters");
  let flag: string | undefined;
  if (t[i] === "[ASSURED]" || t[i] === "[OFFLOAD]" || t[i] === "[HW_OFFLOAD]") {
    flag = t[i++]!.slice(1, -1);
  }
  let mark: number | undefined;
  if (t[i]?.startsWith("mark=")) {
    mark = parseUint(t[i]!.slice(5), MAX_U32);
    if (mark === undefined) return bad(`bad mark ${quote(t[i])}`);
    i++;
  }
  if (t[i]?.startsWith("secctx=")) {
    if (!/^secctx=[\x21-\x7e]+$/.test(t[i]!)) return bad(`bad secctx ${quote(t[i])}`);
    i++;
  }
  if (t[i]?.startsWith("zone=")) {
    if (zone !== undefined || replyZone !== undefined) return bad("more than one zone");
    zone = replyZone = parseUint(t[i]!.slice(5), 65535);
    if (zone === undefined) return bad(`bad zone ${quote(t[i])}`);
    i++;
  }
  if (t[i]?.startsWith("delta-time=")) {
    if (parseUint(t[i]!.slice(11), Number.MAX_SAFE_INTEGER) === undefined) {
      return bad(`bad delta-time ${quote(t[i])}`);
    }
    i++;
  }
  const use = t[i]?.startsWith("use=") ? parseUint(t[i]!.slice(4), MAX_U32) : undefined;
  if (use === undefined) return bad(`expected use=, found ${quote(t[i])}`);
  i++;
  if (i !== t.length) return bad(`unexpected ${quote(t[i])} after use=`);
  return {
    kind: "tcp",
    entry: {
      family,
      timeout,
      state,
      original: orig,
      reply,
      zone: zone ?? 0,
      replyZone: replyZone ?? 0,
      unreplied,
      flag,
      mark,
      use,
    },
  };
}

/**
 * The {@linkcode Candidate} of a parsed entry, seen between `seenFrom` and
 * `seenTo`; `translated` is set when the reply source differs from the
 * original destination.
 *
 * @example
 * ```ts
 * import { lineCandidate, parseLine } from "./parse.ts";
 * const r = parseLine(
 *   "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=80 " +
 *     "[UNREPLIED] src=10.244.1.5 dst=10.0.0.1 sport=8080 dport=40000 mark=0 zone=0 use=2",
 * );
 * if (r.kind === "tcp") lineCandidate(r.entry, 117, 0, 0).translated; // => { addr: "10.244.1.5", port: 8080 }
 * ```
 */
export function lineCandidate(
  e: TcpEntry,
  timeout: number,
  seenFrom: number,
  seenTo: number,
): Candidate {
  const { original: o, reply: r } = e;
  const c: Candidate = {
    family: e.family,
    src: o.src,
    dst: o.dst,
    sport: o.sport,
    dport: o.dport,
    zone: e.zone,
    timeout,
    seenFrom,
    seenTo,
  };
  if (r.src !== o.dst || r.sport !== o.dport) c.translated = { addr: r.src, port: r.sport };
  return c;
}

/** `src= dst= sport= dport=` at `t[i..i+3]`, or the reason it is not. */
function parseDirection(t: string[], i: number, family: Family): Direction | string {
  const [s, d, sp, dp] = [t[i], t[i + 1], t[i + 2], t[i + 3]];
  if (!s?.startsWith("src=")) return `expected src=, found ${quote(s)}`;
  if (!d?.startsWith("dst=")) return `expected dst=, found ${quote(d)}`;
  if (!sp?.startsWith("sport=")) return `expected sport=, found ${quote(sp)}`;
  if (!dp?.startsWith("dport=")) return `expected dport=, found ${quote(dp)}`;
  const canon = family === "ipv4" ? canonicalIPv4 : canonicalIPv6;
  const src = canon(s.slice(4));
  if (src === undefined) return `bad ${family} address ${quote(s)}`;
  const dst = canon(d.slice(4));
  if (dst === undefined) return `bad ${family} address ${quote(d)}`;
  const sport = parseUint(sp.slice(6), 65535);
  if (sport === undefined) return `bad port ${quote(sp)}`;
  const dport = parseUint(dp.slice(6), 65535);
  if (dport === undefined) return `bad port ${quote(dp)}`;
  return { src, dst, sport, dport };
}

/** Skips `packets=N bytes=N` at `t[i]` if present; -1 when they are there but bad. */
function skipCounters(t: string[], i: number): number {
  if (!t[i]?.startsWith("packets=")) return i;
  if (parseUint(t[i].slice(8), Number.MAX_SAFE_INTEGER) === undefined) return -1;
  if (!t[i + 1]?.startsWith("bytes=")) return -1;
  if (parseUint(t[i + 1]!.slice(6), Number.MAX_SAFE_INTEGER) === undefined) return -1;
  return i + 2;
}

function bad(reason: string): ParsedLine {
  return { kind: "malformed", reason };
}

/** A field shown in a reason: JSON-quoted (control bytes escaped), cut at 40 characters. */
function quote(s: string | undefined): string {
  if (s === undefined) return "end of line";
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}
