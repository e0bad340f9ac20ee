/**
 * A source that learns of candidates from conntrack events instead of
 * reading the whole table every poll: its cost follows the candidates.
 *
 * @module
 */
import type { Clock } from "../basics.ts";
import type { Candidate, EvidenceRead, Snapshot, SnapshotOptions } from "../model/snapshot.ts";
import { type ClientKey, type ParsedTuple, parseTuple, tupleKey } from "../model/tuple.ts";
import { entryTuple } from "../netlink/conntrack_entry.ts";
import { type ConntrackEvent, openEventSocket } from "../netlink/events.ts";
import { EventStream } from "./event_stream.ts";
import { type GetAnswer, getEntries } from "../netlink/get_batch.ts";
import { NetlinkSocket, type NetlinkTransport } from "../netlink/socket.ts";
import { isSynSentUnreplied } from "../netlink/syn_sent.ts";
import { EventEvidence } from "./heard_translations.ts";
import { readHeardEvidence } from "./heard_evidence.ts";
import { TrackedCandidates } from "./tracked_candidates.ts";
import { EventsHealth } from "./events_health.ts";
import { entryCandidate, translation } from "../netlink/entry_candidate.ts";
import type { Source } from "./source.ts";
import {
  eventSocketOptions,
  type EventsSourceOptions,
  type EventsStats,
  newEventsStats,
  RESYNC_REASONS,
  type ResyncReason,
} from "./events_options.ts";

export { RESYNC_REASONS };
export type { EventsSourceOptions, EventsStats, ResyncReason };

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
 *   dropped; the snapshot holds the candidates as just read. With
 *   `heardFirst`, a candidate heard since the last poll is not read: its
 *   event is its first observation (`heard`, see `HeardCandidates`);
 * - instead, a full filtered dump (`dump`) runs at the first poll, at once at
 *   the poll that finds the event socket overflowed (`ENOBUFS`) or failing,
 *   when candidates were left out for `maxCandidates` and there is room
 *   again, and every `resyncIntervalMs`. Events queue during the dump (the
 *   socket was subscribed before it), so nothing made meanwhile is missed;
 *   an entry lost to an overflow, a garbled event (`malformed`) or events
 *   switched off (`events_off`) is found by the dump of the poll that sees
 *   it, and `EventsHealth` asks for one when the stream is quiet while the
 *   table changes (`stalled`). A periodic or stall-check dump is judged: a
 *   candidate no event announced was missed (`stats.missed`): the socket is
 *   opened again.
 *
 * Evidence (`SnapshotOptions.evidenceFor`, the `EvidenceRead` contract)
 * comes from the translated entries heard as new since the socket was
 * subscribed, each read again by a GET in the same snapshot: only entries
 * still in the table are listed. Entries created before the subscription,
 * or lost to an overflow, are never listed (the dump does not collect
 * them): a translated entry is listed from the first read after its
 * creation on, which is what the un-NATed rule needs to tell it is newer
 * than a candidate. A key asked is kept whole or marked unknown (see
 * `EventEvidence`), and a poll whose drain left events queued or lost
 * some, or ran while events were off, gives no evidence at all.
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
  readonly stats: EventsStats = newEventsStats();
  #o: EventsSourceOptions;
  #clock: Clock;
  #period: number;
  #stream: EventStream;
  #get: NetlinkTransport | undefined;
  #getBuf = new Uint8Array(64 * 1024);
  #seq = (Math.random() * 0x7fffffff) >>> 0;
  /** Candidates by tuple key. */
  #tracked: TrackedCandidates;
  #heard = new EventEvidence();
  #health: EventsHealth;
  /** Candidate keys heard while a resync listens for them. */
  #heardKeys: Set<string> | undefined;
  #due: ResyncReason | undefined = "start";
  #nextPeriodic = Infinity;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Counts of the poll in progress. */
  #scanned = 0;
  #malformed = 0;
  #firstMalformed: { reason: string; line: string } | undefined;

  constructor(options: EventsSourceOptions) {
    this.#o = options;
    this.#clock = options.clock ?? (() => performance.now());
    this.#period = options.resyncIntervalMs ?? 300_000;
    const since = options.heardFirst ? this.#clock() : undefined;
    this.#tracked = new TrackedCandidates(options.maxCandidates ?? Infinity, since);
    this.#stream = new EventStream(
      options.openEvents ?? (() => openEventSocket(eventSocketOptions(options))),
      options.maxEventsPerPoll ?? 200_000,
    );
    this.#health = new EventsHealth({
      clock: this.#clock,
      maxQuietMs: this.#period,
      ...(options.sysctl !== undefined ? { read: options.sysctl } : {}),
      ...(options.quietMs !== undefined ? { quietMs: options.quietMs } : {}),
      ...(options.onEventsSwitch !== undefined ? { onEventsSwitch: options.onEventsSwitch } : {}),
    });
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
    this.#stream.close();
    this.#get?.close();
    this.#get = undefined;
    this.#o.dump.close?.();
  }

  async #snapshot(signal: AbortSignal | undefined, options: SnapshotOptions): Promise<Snapshot> {
    if (this.#closed) throw new Error("events source is closed");
    const startedAt = this.#clock();
    this.#scanned = this.#malformed = 0;
    this.#firstMalformed = undefined;
    // Subscribed before any dump, so nothing created from now on is missed.
    if (this.#stream.subscribe()) this.#due ??= "error";
    await this.#drain(signal);
    this.#stream.subscribe(); // the drain found the socket broken: subscribe again before the dump
    if (this.#due === undefined && this.#tracked.leftOut && this.#tracked.room) {
      this.#due = "limit";
    }
    if (this.#due === undefined && this.#clock() >= this.#nextPeriodic) this.#due = "periodic";
    const verdict = await this.#health.check();
    if (this.#due === undefined) this.#due = verdict;
    let candidates: Candidate[];
    let overflow = 0;
    if (this.#due !== undefined) {
      ({ candidates, overflow } = await this.#resync(this.#due, signal));
    } else {
      const { heard, read } = this.#tracked.toRead();
      candidates = [...heard, ...await this.#reread(read, signal)];
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
    const leftOut = this.#tracked.leftOut;
    this.#scanned += snap.scanned;
    this.#malformed += snap.malformed;
    this.#firstMalformed ??= snap.firstMalformed;
    const fromDump: [string, ParsedTuple, number | undefined][] = [];
    for (const c of snap.candidates) {
      const p = parseTuple(c);
      if (p.ok) fromDump.push([tupleKey(p.tuple), p.tuple, c.id]);
    }
    const dumped = new Set(fromDump.map(([k]) => k));
    const before = new Set([...this.#tracked.entries()].map(([k]) => k));
    this.#tracked.replace(fromDump);
    this.#tracked.leftOut = (snap.overflow ?? 0) > 0;
    this.#health.resynced();
    // Events queued while the dump ran: a candidate created meanwhile may be missing from it.
    this.#heardKeys = new Set();
    try {
      const complete = await this.#drain(signal);
      // Only where events were complete since the last dump can the dump tell they were not.
      const judge = (reason === "periodic" || reason === "stalled") && !leftOut && complete;
      if (judge) await this.#judge(reason, [...dumped].filter((k) => !before.has(k)), signal);
    } finally {
      this.#heardKeys = undefined;
    }
    const extra = [...this.#tracked.entries()].filter(([k]) => !dumped.has(k)).map(([, t]) => t);
    const more = extra.length > 0 ? await this.#reread(extra, signal) : [];
    this.#tracked.clearHeard(); // all read: by the dump or a GET
    return { candidates: [...snap.candidates, ...more], overflow: snap.overflow ?? 0 };
  }

  /**
   * `unknown`: candidates of the dump that were not tracked before it. Those
   * whose event has not come after a short wait (the kernel queues an event
   * just after the entry is in the table) were missed: a stalled stream. It
   * is counted and told, and the socket is reopened (the next poll dumps, for
   * what comes meanwhile).
   */
  async #judge(reason: ResyncReason, unknown: string[], signal?: AbortSignal): Promise<void> {
    const heard = this.#heardKeys!;
    let missed = unknown.filter((k) => !heard.has(k));
    if (missed.length > 0) {
      await new Promise((r) => setTimeout(r, 20));
      if (!(await this.#drain(signal))) return;
      missed = missed.filter((k) => !heard.has(k));
    }
    this.#health.judged(missed.length, reason === "stalled");
    if (missed.length === 0) return;
    this.stats.missed += missed.length;
    this.#o.onMissed?.(missed.length);
    this.#stream.resubscribe();
    this.#due = "stalled";
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
   * Drains the event socket (see `EventStream.drain`); any event lost makes
   * this poll dump. Resolves whether the drain was complete.
   */
  async #drain(signal?: AbortSignal): Promise<boolean> {
    const startedAt = this.#clock();
    const r = await this.#stream.drain(signal, (ev) => this.#onEvent(ev));
    if (r.complete) this.#tracked.drained(startedAt);
    this.stats.received += r.received;
    this.stats.overflows += r.overflows;
    this.#scanned += r.received;
    this.#malformed += r.malformed;
    if (r.firstMalformed !== undefined) {
      this.#firstMalformed ??= { reason: r.firstMalformed, line: "" };
    }
    if (r.received > 0) this.#health.heard();
    if (r.lost !== undefined) this.#due = r.lost;
    return r.complete;
  }

  #onEvent(ev: ConntrackEvent): void {
    const p = parseTuple(entryTuple(ev.entry));
    if (!p.ok) return;
    // Translated by its reply tuple too (IPS_DST_NAT alone can be set without a translation).
    if (ev.translated && translation(ev.entry) !== undefined) {
      this.#heard.add({ tuple: p.tuple, heardAt: this.#clock() });
    }
    if (ev.ended) this.#tracked.ended(tupleKey(p.tuple), ev.entry.id);
    if (!ev.candidate) return;
    const key = tupleKey(p.tuple);
    this.#heardKeys?.add(key);
    this.#tracked.heard(key, p.tuple, ev.entry, this.#clock());
  }

  /**
   * The evidence read for `keys` (see `EvidenceRead`): the translated entries
   * heard for them since the socket was subscribed, each read again now by
   * GET; gone or no longer translated ones are forgotten. Events queued so
   * far are heard first, so an entry in the table before this read is known
   * unless it was created before the subscription or lost to an overflow:
   * then it is never listed, in this read or any later one.
   */
  async #evidenceRead(
    keys: readonly ClientKey[],
    signal?: AbortSignal,
  ): Promise<EvidenceRead | undefined> {
    // Events still queued, lost, or not sent at all: an entry in the table may be unheard.
    if (!(await this.#drain(signal)) || this.#health.eventsOff) return undefined;
    return await readHeardEvidence(this.#heard, keys, (tuples) => this.#getAll(tuples, signal));
  }
}
