/**
 * Finds the candidate lines in a stream of table bytes without splitting or
 * decoding the others.
 *
 * Most of a real table is ESTABLISHED, TIME_WAIT and UDP. For each line the
 * scanner compares a few bytes at fixed places (`ipv4     2 tcp      6 <timeout>
 * SYN_SENT `); only lines that pass are decoded and handed to the full
 * {@linkcode parseLine}. Skipped lines cost a newline search and a handful of
 * byte compares, and allocate nothing.
 *
 * @module
 */
import { canonicalIPv6 } from "../model/addr.ts";
import type { Candidate, Snapshot } from "../model/snapshot.ts";
import { type ClientKey, clientKey } from "../model/tuple.ts";
import { EvidenceBuilder } from "../model/evidence_builder.ts";
import { fastCandidate } from "./fast_line.ts";
import { lineCandidate, parseLine } from "./parse.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
// `%-8s %u %-8s %u ` in ct_seq_show(): names padded to 8 columns.
const IPV4 = bytes("ipv4     2 ");
const IPV6 = bytes("ipv6     10 ");
const TCP = bytes("tcp      6 ");
const SYN_SENT = bytes("SYN_SENT ");
const NL = 10;
/** A line longer than this is malformed; the scanner drops it without keeping it in memory. */
export const MAX_LINE_BYTES = 4096;

/** Options for {@linkcode TableScanner}. */
export interface TableScannerOptions {
  /** Keep at most this many candidates; default unlimited. */
  maxCandidates?: number | undefined;
  /** Also collect translated TCP entries of these keys (the un-NATed rule's evidence). */
  evidenceFor?: readonly ClientKey[];
  /** Collect candidates; default true. */
  candidates?: boolean;
}

/** The first malformed line of a scan, for a log line. */
export interface MalformedSample {
  reason: string;
  /** The line as read (cut at 200 characters); log it JSON-escaped. */
  line: string;
}

/**
 * Incremental scanner: feed it chunks with {@linkcode TableScanner.push}, call
 * {@linkcode TableScanner.end} once, then read `candidates`, `scanned`,
 * `malformed`.
 *
 * @example
 * ```ts
 * import { TableScanner } from "./scanner.ts";
 * const s = new TableScanner();
 * s.push(new TextEncoder().encode(
 *   "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 " +
 *     "[UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=0 use=2\n",
 * ), 0, 1);
 * s.end();
 * s.candidates.length; // => 1
 * ```
 */
export class TableScanner {
  /** TCP SYN_SENT + [UNREPLIED] entries found so far. */
  readonly candidates: Candidate[] = [];
  /** Candidate lines past `maxCandidates`: counted, not parsed, not kept. */
  overflow = 0;
  readonly maxCandidates: number;
  /** Complete lines seen. */
  scanned = 0;
  /** Lines that did not match the format. */
  malformed = 0;
  /** The first malformed line, if any. */
  firstMalformed: MalformedSample | undefined;

  #carry = new Uint8Array(MAX_LINE_BYTES);
  #carryLen = 0;
  /** The carried line grew past MAX_LINE_BYTES: drop bytes until its newline. */
  #overlong = false;
  #carryFrom = 0;
  #decoder = new TextDecoder();

  /**
   * With `evidenceFor`: the translated TCP entries, in any state, of each
   * key asked (see `EvidenceRead` in lib/model/snapshot.ts); none by default.
   */
  readonly evidence: EvidenceBuilder | undefined;
  #candidates: boolean;

  /**
   * `maxCandidates` (default unlimited) bounds what one scan keeps. With
   * `evidenceFor`, the same pass also looks for evidence for those
   * destinations (see {@linkcode TableScanner.evidence}); with
   * `candidates: false` it looks for nothing else.
   */
  constructor(options: TableScannerOptions = {}) {
    this.maxCandidates = options.maxCandidates ?? Infinity;
    this.#candidates = options.candidates ?? true;
    if (options.evidenceFor !== undefined && options.evidenceFor.length > 0) {
      this.evidence = new EvidenceBuilder(options.evidenceFor);
    }
  }

  /**
   * Scans one chunk. `seenFrom`..`seenTo` is when the bytes of lines that
   * start in this chunk could have been formatted by the kernel (for procfs:
   * the start of the previous read call to the end of this one).
   */
  push(chunk: Uint8Array, seenFrom: number, seenTo: number): void {
    let pos = 0;
    const n = chunk.length;
    if (this.#carryLen > 0 || this.#overlong) {
      const nl = chunk.indexOf(NL);
      const end = nl === -1 ? n : nl;
      this.#appendCarry(chunk, 0, end);
      if (nl === -1) return;
      this.#finishCarry(seenTo);
      pos = nl + 1;
    }
    while (pos < n) {
      const nl = chunk.indexOf(NL, pos);
      if (nl === -1) {
        this.#carryFrom = seenFrom;
        this.#appendCarry(chunk, pos, n);
        return;
      }
      this.#line(chunk, pos, nl, seenFrom, seenTo);
      pos = nl + 1;
    }
  }

  /** What was found, as a {@linkcode Snapshot} read between `startedAt` and `finishedAt`. */
  snapshot(startedAt: number, finishedAt: number): Snapshot {
    return {
      ...(this.evidence !== undefined ? { evidence: this.evidence.read() } : {}),
      candidates: this.candidates,
      scanned: this.scanned,
      malformed: this.malformed,
      overflow: this.overflow,
      firstMalformed: this.firstMalformed,
      startedAt,
      finishedAt,
    };
  }

  /** Ends the stream: a last line without its newline is truncated, so malformed. */
  end(): void {
    if (this.#carryLen > 0 || this.#overlong) {
      this.scanned++;
      this.#reject("truncated line (no newline at end of table)", this.#carry, 0, this.#carryLen);
      this.#carryLen = 0;
      this.#overlong = false;
    }
  }

  #appendCarry(chunk: Uint8Array, from: number, to: number): void {
    if (this.#overlong) return;
    const len = to - from;
    if (this.#carryLen + len > MAX_LINE_BYTES) {
      this.#overlong = true;
      return;
    }
    this.#carry.set(chunk.subarray(from, to), this.#carryLen);
    this.#carryLen += len;
  }

  #finishCarry(seenTo: number): void {
    if (this.#overlong) {
      this.scanned++;
      this.#reject(`line longer than ${MAX_LINE_BYTES} bytes`, this.#carry, 0, this.#carryLen);
    } else {
      this.#line(this.#carry, 0, this.#carryLen, this.#carryFrom, seenTo);
    }
    this.#carryLen = 0;
    this.#overlong = false;
  }

  #line(buf: Uint8Array, start: number, end: number, seenFrom: number, seenTo: number): void {
    this.scanned++;
    let p: number;
    if (startsWith(buf, start, end, IPV4)) p = start + IPV4.length;
    else if (startsWith(buf, start, end, IPV6)) p = start + IPV6.length;
    else return this.#reject("unknown address family", buf, start, end);
    if (end - start > MAX_LINE_BYTES) {
      return this.#reject(`line longer than ${MAX_LINE_BYTES} bytes`, buf, start, end);
    }
    if (!startsWith(buf, p, end, TCP)) return; // another protocol
    p += TCP.length;
    if (this.evidence !== undefined) this.#evidenceLine(this.evidence, buf, start, end, p);
    if (!this.#candidates) return;
    while (p < end && buf[p]! >= 48 && buf[p]! <= 57) p++; // timeout (absent when offloaded)
    if (p < end && buf[p] === 32) p++;
    if (!startsWith(buf, p, end, SYN_SENT)) return; // another TCP state
    if (this.candidates.length >= this.maxCandidates) {
      this.overflow++;
      return;
    }
    const fast = fastCandidate(buf, start, end, seenFrom, seenTo);
    if (fast !== undefined) {
      this.candidates.push(fast);
      return;
    }
    // Not the plain shape (counters, zone-orig=, compressed IPv6, …): the full parser decides.
    const text = this.#decoder.decode(buf.subarray(start, end));
    const r = parseLine(text);
    if (r.kind === "malformed") return this.#note(r.reason, text);
    if (r.kind !== "tcp") return; // unreachable: the header said tcp
    const e = r.entry;
    if (e.state !== "SYN_SENT" || !e.unreplied || e.timeout === undefined) return;
    this.candidates.push(lineCandidate(e, e.timeout, seenFrom, seenTo));
  }

  /** Evidence mode: a TCP line whose fields start at `p`. */
  #evidenceLine(
    ev: EvidenceBuilder,
    buf: Uint8Array,
    start: number,
    end: number,
    p: number,
  ): void {
    // Only lines whose original destination address was asked for are parsed.
    const dst = firstDst(buf, p, end);
    if (dst === undefined) return;
    const addr = dst.includes(":") ? canonicalIPv6(dst) : dst;
    if (addr === undefined || !ev.wantsAddress(addr)) return;
    const text = this.#decoder.decode(buf.subarray(start, end));
    const r = parseLine(text);
    // A malformed line is no evidence; the candidate pass (or the snapshot) counts it.
    if (r.kind !== "tcp") return;
    const e = r.entry;
    const { original: o, reply } = e;
    if (reply.src === o.dst && reply.sport === o.dport) return; // not translated
    const key = clientKey({
      family: e.family,
      src: o.src,
      dst: o.dst,
      dport: o.dport,
      zone: e.zone,
    });
    ev.add(key, {
      sport: o.sport,
      replyZone: e.replyZone,
      translated: { addr: reply.src, port: reply.sport },
    });
  }

  #reject(reason: string, buf: Uint8Array, start: number, end: number): void {
    if (this.firstMalformed !== undefined) {
      this.malformed++;
      return;
    }
    const cut = Math.min(end, start + 200);
    this.#note(reason, this.#decoder.decode(buf.subarray(start, cut)));
  }

  #note(reason: string, line: string): void {
    this.malformed++;
    this.firstMalformed ??= { reason, line: line.length > 200 ? line.slice(0, 200) : line };
  }
}

function startsWith(buf: Uint8Array, at: number, end: number, pat: Uint8Array): boolean {
  if (end - at < pat.length) return false;
  for (let i = 0; i < pat.length; i++) if (buf[at + i] !== pat[i]) return false;
  return true;
}

const DST = bytes(" dst=");

/** The text of the first ` dst=` field at or after `p`, or `undefined`. */
function firstDst(buf: Uint8Array, p: number, end: number): string | undefined {
  for (let i = p; i + DST.length <= end; i++) {
    if (buf[i] !== 32 || !startsWith(buf, i, end, DST)) continue;
    const from = i + DST.length;
    let to = from;
    while (to < end && buf[to] !== 32 && to - from <= 45) to++;
    return String.fromCharCode.apply(null, buf.subarray(from, to) as unknown as number[]);
  }
  return undefined;
}
