/**
 * A source that learns of candidates from conntrack events instead of
 * reading the whole table every poll, so its cost follows the candidates,
 * not the table.
 *
 * @module
 */
import type { Clock } from "../basics.ts";
import type { Candidate, EvidenceRead, Snapshot, SnapshotOptions } from "../model/snapshot.ts";
import { type ClientKey, clientKey, parseTuple, tupleKey } from "../model/tuple.ts";
import type { ParsedTuple } from "../model/tuple.ts";
import { EvidenceBuilder } from "../model/evidence_builder.ts";
import { entryTuple } from "../netlink/conntrack_entry.ts";
import { Errno, ErrnoError } from "../os/errno.ts";
import { classifyEvent, openEventSocket } from "../netlink/events.ts";
import { type GetAnswer, getEntries } from "../netlink/get_batch.ts";
import { NetlinkDecodeError, parseMessages } from "../netlink/message.ts";
import { NetlinkSocket, type NetlinkTransport } from "../netlink/socket.ts";
import { isSynSentUnreplied } from "../netlink/syn_sent.ts";
import { EventEvidence } from "./heard_translations.ts";
import { entryCandidate, translation } from "../netlink/entry_candidate.ts";
import type { Source } from "./source.ts";

/** Why a full dump ran instead of per-tuple reads. */
export type ResyncReason = "start" | "overflow" | "error" | "periodic" | "limit";
/** Every {@linkcode ResyncReason}, for metrics. */
export const RESYNC_REASONS: readonly ResyncReason[] = [
  "start",
  "overflow",
  "error",
  "periodic",
  "limit",
];

/** Counters of the events source, for metrics. */
export interface EventsStats {
  /** Event messages received (after the kernel's filter). */
  received: number;
  /** Times the event socket overflowed (`ENOBUFS`): events were lost. */
  overflows: number;
  /** Full dumps, by reason. */
  resyncs: Record<ResyncReason, number>;
}

/** Options for {@linkcode NetlinkEventsSource}. */
export interface EventsSourceOptions {
  clock?: Clock;
  /** Candidates tracked at most; default unlimited. */
  maxCandidates?: number;
  /** The safety-net dump's period; default 300 000 ms. */
  resyncIntervalMs?: number;
  /** The event socket's receive buffer; default 8 MiB. */
  recvBufferBytes?: number;
  /** Receive translated entries as evidence for the un-NATed rule; default true. */
  evidence?: boolean;
  /** Time to wait for the answers to one batch of GETs; default 5000 ms. */
  timeoutMs?: number;
  /** Event messages handled per poll at most (the rest wait in the socket); default 200 000. */
  maxEventsPerPoll?: number;
  /** The full (filtered) dump: start, overflow, safety net. */
  dump: Source;
  /** Opens the event socket; default {@linkcode openEventSocket}. Tests pass a fake. */
  openEvents?: () => NetlinkTransport;
  /** Opens the socket the GETs go out on; default `NetlinkSocket.open`. */
  openTransport?: () => NetlinkTransport;
  /** Told of each full dump, with why (log it). */
  onResync?: (reason: ResyncReason) => void;
}

/**
 * A {@linkcode Source} over conntrack events (`NFNLGRP_CONNTRACK_NEW`, with
 * the kernel-side filter of `lib/netlink/bpf.ts`):
 *
 * - each poll drains the event socket without waiting: a new TCP `SYN_SENT`
 *   entry becomes a tracked candidate; a new translated TCP entry is kept
 *   (bounded) as possible evidence;
 * - then GETs every tracked candidate by tuple and zone (a hash look-up each,
 *   whatever the table's size): the renewal rule needs their timeouts, which
 *   change without events. A gone entry, or one that got its reply, is
 *   dropped; the snapshot holds the candidates as just read;
 * - instead, a full filtered dump (`dump`) runs at the first poll, at once at
 *   the poll that finds the event socket overflowed (`ENOBUFS`) or failing,
 *   when candidates were left out for `maxCandidates` and there is room again,
 *   and every `resyncIntervalMs` as a safety net. Events keep queueing
 *   during the dump (the socket was subscribed before it), so nothing
 *   created meanwhile is missed; an entry lost to an overflow is found by
 *   the dump of the very poll that sees the overflow.
 *
 * Evidence (`SnapshotOptions.evidenceFor`, the `EvidenceRead` contract)
 * comes from the translated entries heard as new since the socket was
 * subscribed, each read again by a GET in the same snapshot: only entries
 * still in the table are listed. Entries created before the subscription,
 * or lost to an overflow, are never listed (the dump does not collect
 * them): a translated entry is listed from the first read after its
 * creation on, which is what the un-NATed rule needs to tell it is newer
 * than a candidate.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); listens to this host's conntrack events.
 * import { NetlinkEventsSource } from "./netlink_events.ts";
 * import { NetlinkSource } from "./netlink.ts";
 * const source = new NetlinkEventsSource({ dump: new NetlinkSource() });
 * const snap = await source.snapshot();
 * console.log(snap.candidates.length, source.stats);
 * source.close();
 * ```
 */
export class NetlinkEventsSource implements Source {
  readonly name = "events";
  readonly stats: EventsStats = {
    received: 0,
    overflows: 0,
    resyncs: { start: 0, overflow: 0, error: 0, periodic: 0, limit: 0 },
  };
  #o: EventsSourceOptions;
  #clock: Clock;
  #max: number;
  #period: number;
  #events: NetlinkTransport | undefined;
  #get: NetlinkTransport | undefined;
  #buf = new Uint8Array(64 * 1024);
  #getBuf = new Uint8Array(64 * 1024);
  #seq = (Math.random() * 0x7fffffff) >>> 0;
  /** Candidates by tuple key. */
  #tracked = new Map<string, ParsedTuple>();
  #heard = new EventEvidence();
  #due: ResyncReason | undefined = "start";
  #nextPeriodic = Infinity;
  /** Candidates were left out for `maxCandidates` since the last dump. */
  #leftOut = false;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Counts of the poll in progress. */
  #scanned = 0;
  #malformed = 0;
  #firstMalformed: { reason: string; line: string } | undefined;

  constructor(options: EventsSourceOptions) {
    this.#o = options;
    this.#clock = options.clock ?? (() => performance.now());
    this.#max = options.maxCandidates ?? Infinity;
    this.#period = options.resyncIntervalMs ?? 300_000;
  }

  /** Candidates tracked now. */
  get tracked(): number {
    return this.#tracked.size;
  }

  snapshot(signal?: AbortSignal, options: SnapshotOptions = {}): Promise<Snapshot> {
    const run = this.#queue.then(() => this.#snapshot(signal, options));
    this.#queue = run.catch(() => {});
    return run;
  }

  close(): void {
    this.#closed = true;
    this.#events?.close();
    this.#get?.close();
    this.#events = this.#get = undefined;
    this.#o.dump.close?.();
  }

  async #snapshot(signal: AbortSignal | undefined, options: SnapshotOptions): Promise<Snapshot> {
    if (this.#closed) throw new Error("events source is closed");
    const startedAt = this.#clock();
    this.#scanned = this.#malformed = 0;
    this.#firstMalformed = undefined;
    if (this.#events === undefined) {
      // Subscribed before any dump, so nothing created from now on is missed.
      this.#events = (this.#o.openEvents ?? (() => openEventSocket(this.#eventOptions())))();
      this.#due ??= "error";
    }
    await this.#drain(signal);
    if (this.#events === undefined) {
      // The drain found the socket broken: subscribe again before the dump.
      this.#events = (this.#o.openEvents ?? (() => openEventSocket(this.#eventOptions())))();
    }
    if (this.#due === undefined && this.#leftOut && this.#tracked.size < this.#max) {
      this.#due = "limit";
    }
    if (this.#due === undefined && this.#clock() >= this.#nextPeriodic) this.#due = "periodic";
    let candidates: Candidate[];
    let overflow = 0;
    if (this.#due !== undefined) {
      ({ candidates, overflow } = await this.#resync(this.#due, signal));
    } else {
      candidates = await this.#reread([...this.#tracked.values()], signal);
    }
    const snap: Snapshot = {
      candidates,
      scanned: this.#scanned,
      malformed: this.#malformed,
      overflow,
      firstMalformed: this.#firstMalformed,
      startedAt,
      finishedAt: this.#clock(),
    };
    const ask = options.evidenceFor ?? [];
    if (ask.length > 0) {
      // No evidence rather than evidence that may be incomplete: nothing is known this poll.
      const evidence = await this.#evidenceRead(ask, signal).catch(() => undefined);
      if (evidence !== undefined) snap.evidence = evidence;
    }
    return snap;
  }

  #eventOptions() {
    const o: { recvBufferBytes?: number; evidence?: boolean } = {};
    if (this.#o.recvBufferBytes !== undefined) o.recvBufferBytes = this.#o.recvBufferBytes;
    if (this.#o.evidence !== undefined) o.evidence = this.#o.evidence;
    return o;
  }

  /** A full dump replaces the tracked set; candidates heard during it are read too. */
  async #resync(
    reason: ResyncReason,
    signal?: AbortSignal,
  ): Promise<{ candidates: Candidate[]; overflow: number }> {
    this.#due = undefined;
    this.stats.resyncs[reason]++;
    this.#o.onResync?.(reason);
    let snap: Snapshot;
    try {
      snap = await this.#o.dump.snapshot(signal);
    } catch (e) {
      this.#due = reason; // try again at the next poll
      throw e;
    }
    this.#nextPeriodic = this.#clock() + this.#period;
    this.#leftOut = (snap.overflow ?? 0) > 0;
    this.#scanned += snap.scanned;
    this.#malformed += snap.malformed;
    this.#firstMalformed ??= snap.firstMalformed;
    const fromDump = new Map<string, ParsedTuple>();
    for (const c of snap.candidates) {
      const p = parseTuple(c);
      if (p.ok) fromDump.set(tupleKey(p.tuple), p.tuple);
    }
    const dumped = new Set(fromDump.keys());
    this.#tracked = fromDump;
    // Events queued while the dump ran: a candidate created meanwhile may be missing from it.
    await this.#drain(signal);
    const extra = [...this.#tracked].filter(([k]) => !dumped.has(k)).map(([, t]) => t);
    const more = extra.length > 0 ? await this.#reread(extra, signal) : [];
    return { candidates: [...snap.candidates, ...more], overflow: snap.overflow ?? 0 };
  }

  /** GETs `tuples`; returns those still candidates, drops the rest from the tracked set. */
  async #reread(tuples: ParsedTuple[], signal?: AbortSignal): Promise<Candidate[]> {
    if (tuples.length === 0) return [];
    const answers = await this.#getAll(tuples, signal);
    const out: Candidate[] = [];
    for (let i = 0; i < tuples.length; i++) {
      const a = answers[i]!, key = tupleKey(tuples[i]!);
      this.#scanned++;
      if (a.kind === "error") {
        // Never half a table taken for whole: fail the poll, and dump at the next.
        this.#due = "error";
        throw new Error(`reading a tracked candidate failed: ${a.error}`);
      }
      const c = a.kind === "entry" && isSynSentUnreplied(a.entry)
        ? entryCandidate(a.entry, a.seenFrom, a.seenTo)
        : undefined;
      if (c === undefined) this.#tracked.delete(key);
      else out.push(c);
    }
    return out;
  }

  async #getAll(tuples: ParsedTuple[], signal?: AbortSignal): Promise<GetAnswer[]> {
    const t = this.#get ??= (this.#o.openTransport ?? (() => NetlinkSocket.open()))();
    try {
      return await getEntries(t, tuples, {
        clock: this.#clock,
        timeoutMs: this.#o.timeoutMs ?? 5000,
        buffer: this.#getBuf,
        nextSeq: () => this.#seq = (this.#seq + 1) >>> 0,
        signal,
      });
    } catch (e) {
      // The socket may hold answers to requests no longer waited for.
      this.#get?.close();
      this.#get = undefined;
      throw e;
    }
  }

  /**
   * Reads every queued event without waiting, yielding to the event loop
   * every 1,000 messages. `ENOBUFS` (events were lost) makes this poll dump;
   * any other socket error closes the socket (reopened and dumped next poll).
   */
  async #drain(signal?: AbortSignal): Promise<void> {
    const t = this.#events;
    if (t === undefined) return;
    const limit = this.#o.maxEventsPerPoll ?? 200_000;
    for (let handled = 0; handled < limit;) {
      signal?.throwIfAborted();
      let n: number | null;
      try {
        n = t.tryRecv(this.#buf);
      } catch (e) {
        if (e instanceof ErrnoError && e.errno === Errno.ENOBUFS) {
          this.stats.overflows++;
          this.#due = "overflow";
          continue;
        }
        t.close();
        this.#events = undefined;
        this.#due = "error";
        return;
      }
      if (n === null) return;
      if (n > this.#buf.length) {
        // Cut short: that event is lost. Take a bigger buffer and resync.
        this.#buf = new Uint8Array(n);
        this.#due = "overflow";
        continue;
      }
      const { messages, error } = parseMessages(this.#buf.subarray(0, n));
      if (error !== undefined) this.#bad(`netlink framing: ${error}`);
      for (const m of messages) this.#onEvent(m);
      handled += messages.length;
      if (handled % 1000 < messages.length) await new Promise((r) => setTimeout(r, 0));
    }
  }

  #onEvent(m: Parameters<typeof classifyEvent>[0]): void {
    this.stats.received++;
    this.#scanned++;
    let ev;
    try {
      ev = classifyEvent(m);
    } catch (e) {
      if (!(e instanceof NetlinkDecodeError)) throw e;
      this.#bad(e.message);
      return;
    }
    if (ev === undefined) return;
    const p = parseTuple(entryTuple(ev.entry));
    if (!p.ok) return;
    // Translated by its reply tuple too (IPS_DST_NAT alone can be set without a translation).
    if (ev.translated && translation(ev.entry) !== undefined) {
      this.#heard.add({ tuple: p.tuple, heardAt: this.#clock() });
    }
    if (!ev.candidate) return;
    const key = tupleKey(p.tuple);
    if (this.#tracked.has(key)) return;
    if (this.#tracked.size >= this.#max) {
      this.#leftOut = true;
      return;
    }
    this.#tracked.set(key, p.tuple);
  }

  #bad(reason: string): void {
    this.#malformed++;
    this.#firstMalformed ??= { reason, line: "" };
  }

  /**
   * The evidence read for `keys` (see `EvidenceRead`): the translated entries
   * heard for them since the socket was subscribed, each read again now by
   * GET; gone or no longer translated ones are forgotten. Events queued so
   * far are heard first, so an entry in the table before this read is known
   * unless it was created before the subscription or lost to an overflow:
   * then it is never listed, in this read or any later one.
   */
  async #evidenceRead(keys: readonly ClientKey[], signal?: AbortSignal): Promise<EvidenceRead> {
    await this.#drain(signal);
    const found = new EvidenceBuilder(keys);
    const heard = this.#heard.entriesFor(keys, this.#clock());
    if (heard.length === 0) return found.read();
    const answers = await this.#getAll(heard.map((h) => h.tuple), signal);
    heard.forEach((h, i) => {
      const a = answers[i]!;
      if (a.kind === "error") throw new Error(`reading evidence entries failed: ${a.error}`);
      const to = a.kind === "entry" ? translation(a.entry) : undefined;
      if (a.kind !== "entry" || to === undefined) {
        this.#heard.remove(h);
        return;
      }
      const e = a.entry;
      found.add(clientKey(h.tuple), {
        sport: h.tuple.sport,
        replyZone: e.replyZone,
        translated: to,
        ...(e.id !== undefined ? { id: e.id } : {}),
      });
    });
    return found.read();
  }
}
