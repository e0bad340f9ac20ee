/**
 * One fake conntrack table for the agent, rule and bench tests: it is both
 * the {@linkcode Source} that reads it and the {@linkcode Deleter} that
 * deletes from it, so a test sees its deletes applied at the next read.
 *
 * - It ages with its own clock (`now`, in ms), which the test moves and
 *   hands to the agent as its clock; a read takes `readMs` of it.
 * - A read lists the TCP `SYN_SENT` `[UNREPLIED]` entries younger than the
 *   `SYN_SENT` timeout as candidates, with the seconds left rounded down as
 *   the kernel prints them, and the entry's conntrack id where it has one.
 * - Asked for evidence, a read keeps the evidence contract of
 *   lib/model/snapshot.ts: every translated entry of a key asked that is in
 *   the table at the read, through the builder the real sources use.
 * - A delete applies the real deleters' filters: the exact tuple (zone
 *   included), only an entry still `SYN_SENT` `[UNREPLIED]`, and only the
 *   entry of the target's id when it has one; else the tuple is
 *   `already_gone`. A tuple no real deleter would take fails.
 *
 * @module
 */
import { EvidenceBuilder } from "../../lib/model/evidence_builder.ts";
import type { Candidate, Snapshot, SnapshotOptions } from "../../lib/model/snapshot.ts";
import {
  type ClientKey,
  clientKey,
  type Endpoint,
  parseTuple,
  type Tuple,
  tupleKey,
} from "../../lib/model/tuple.ts";
import type { DeleteOutcome, Deleter, DeleteTarget } from "../../lib/deleters/deleter.ts";
import type { Source } from "../../lib/sources/source.ts";

/** One TCP entry of a {@linkcode FakeTable}. */
export interface FakeEntry extends Tuple {
  /** The reply direction's zone; default `zone`. */
  replyZone?: number;
  /** `SYN_SENT` `[UNREPLIED]`: a candidate. Otherwise replied (evidence only, if translated). */
  unreplied: boolean;
  /** Where the destination was translated to; absent: not NATed. */
  translated?: Endpoint | undefined;
  /** Table time (ms) the entry was made at. */
  createdAt: number;
  /** Table time (ms) it left the table (closed and expired, or deleted). */
  goneAt?: number;
  /** The kernel's id; absent: the source knows none (procfs, the CLI). */
  id?: number;
  /**
   * The client sends its SYN again every second: each read finds the timer
   * just restarted (one second short of the `SYN_SENT` timeout), and once
   * deleted the client's next SYN makes a new entry of the same tuple (with a
   * new id where the entry had one).
   */
  retransmits?: boolean;
}

/** One target the table was asked to delete, and when. */
export interface FakeDelete {
  target: DeleteTarget;
  /** Table time of the delete. */
  at: number;
  /** Start of the read before it. */
  readAt: number;
  result: DeleteOutcome["result"];
}

/**
 * What the table answers instead of applying a delete: a deleter that fails,
 * or one that says an entry is gone without deleting it.
 */
export type FakeAnswer =
  | { result: "failed"; error: string }
  | { result: "already_gone" };

/** A conntrack table that ages with a test clock; see the module doc. */
export class FakeTable implements Source, Deleter {
  readonly name: string;
  readonly maxPerPoll = Infinity;
  /** The table's clock (ms); the test moves it and gives it to the agent. */
  now = 0;
  /** How much of the clock one read takes. */
  readMs = 3;
  /** The kernel's `nf_conntrack_tcp_timeout_syn_sent`, in seconds. */
  synSentS = 120;
  /** Deliver evidence when asked (a source whose evidence dump failed does not). */
  evidence = true;
  /** When set, every read rejects with it (it still counts in `reads`). */
  fail: Error | undefined;
  /** Candidates past the source's bound, as a read reports them (not listed). */
  overflow = 0;
  /** When set, deletes are answered with it and not applied. */
  answer: FakeAnswer | undefined;
  /** Reads started, failed ones included. */
  reads = 0;
  /** Start of the last successful read. */
  lastReadAt = 0;
  /** The keys each read was asked evidence for. */
  readonly asked: ClientKey[][] = [];
  /** Each call to {@linkcode FakeTable.delete}, its targets as given. */
  readonly calls: DeleteTarget[][] = [];
  /** Every target asked, in order, with when and what came of it. */
  readonly deleted: FakeDelete[] = [];
  #nextId = 1_000_000;

  constructor(readonly entries: FakeEntry[] = [], name = "fake") {
    this.name = name;
  }

  /** Entries in the table at `at`. */
  live(at: number): FakeEntry[] {
    return this.entries.filter((e) =>
      e.createdAt <= at && (e.goneAt === undefined || e.goneAt > at)
    );
  }

  /** Seconds left of `e`'s `SYN_SENT` timer at `at`, as the kernel prints them; < 0: expired. */
  timeoutAt(e: FakeEntry, at: number): number {
    if (e.retransmits) return this.synSentS - 1;
    return Math.floor((this.synSentS * 1000 - (at - e.createdAt)) / 1000);
  }

  /** Whether `e` is a candidate at `at`: `SYN_SENT` `[UNREPLIED]` and not expired. */
  isCandidate(e: FakeEntry, at: number): boolean {
    return e.unreplied && (e.retransmits === true || at - e.createdAt < this.synSentS * 1000);
  }

  snapshot(_signal?: AbortSignal, o?: SnapshotOptions): Promise<Snapshot> {
    this.reads++;
    if (this.fail) return Promise.reject(this.fail);
    const from = this.lastReadAt = this.now;
    this.now += this.readMs;
    const candidates: Candidate[] = [];
    const live = this.live(from);
    for (const e of live) {
      if (!this.isCandidate(e, from)) continue;
      candidates.push({
        family: e.family,
        src: e.src,
        dst: e.dst,
        sport: e.sport,
        dport: e.dport,
        zone: e.zone,
        timeout: this.timeoutAt(e, from),
        seenFrom: from,
        seenTo: this.now,
        ...(e.translated ? { translated: e.translated } : {}),
        ...(e.id !== undefined ? { id: e.id } : {}),
      });
    }
    const snap: Snapshot = {
      candidates,
      scanned: this.entries.length,
      malformed: 0,
      ...(this.overflow ? { overflow: this.overflow } : {}),
      startedAt: from,
      finishedAt: this.now,
    };
    if (o?.evidenceFor === undefined) return Promise.resolve(snap);
    this.asked.push([...o.evidenceFor]);
    if (!this.evidence) return Promise.resolve(snap);
    const b = new EvidenceBuilder(o.evidenceFor);
    for (const e of live) {
      if (e.translated === undefined) continue;
      b.add(clientKey(e), {
        sport: e.sport,
        replyZone: e.replyZone ?? e.zone,
        translated: e.translated,
        ...(e.id !== undefined ? { id: e.id } : {}),
      });
    }
    return Promise.resolve({ ...snap, evidence: b.read() });
  }

  worstCaseMs(): number {
    return 0;
  }

  delete(targets: readonly DeleteTarget[]): Promise<DeleteOutcome[]> {
    this.calls.push([...targets]);
    return Promise.resolve(targets.map((t) => {
      const outcome = this.#deleteOne(t);
      this.deleted.push({
        target: t,
        at: this.now,
        readAt: this.lastReadAt,
        result: outcome.result,
      });
      return outcome;
    }));
  }

  #deleteOne(t: DeleteTarget): DeleteOutcome {
    const parsed = parseTuple(t);
    if (!parsed.ok) return { tuple: t, result: "failed", error: parsed.problem };
    if (this.answer?.result === "failed") {
      return { tuple: t, result: "failed", error: this.answer.error };
    }
    if (this.answer) return { tuple: t, result: this.answer.result };
    const key = tupleKey(parsed.tuple);
    const e = this.live(this.now).find((e) =>
      tupleKey(e) === key && (t.id === undefined || e.id === t.id) &&
      this.isCandidate(e, this.now)
    );
    if (e === undefined) return { tuple: t, result: "already_gone" };
    e.goneAt = this.now;
    if (e.retransmits) {
      const { goneAt: _, id, ...again } = e;
      this.entries.push({
        ...again,
        createdAt: this.now,
        ...(id === undefined ? {} : { id: this.#nextId++ }),
      });
    }
    return { tuple: t, result: "deleted" };
  }
}
