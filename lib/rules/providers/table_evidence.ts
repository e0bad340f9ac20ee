/**
 * The table-evidence provider (zero config): a destination is NATed now for
 * a client when that same client's **newer** connection to it was
 * translated. Each clause below keeps a connection that works without the
 * agent from being broken (a deleted entry whose SYN-ACK is still on its way
 * through MASQUERADE makes the node answer RST):
 *
 * - **TCP** (the sources list TCP entries only): a DNATed UDP flow to the
 *   same address and port says nothing about TCP rules.
 * - **Same source address, destination address and port, same zone**
 *   (the {@linkcode clientKey}): DNAT restricted to some source subnets, or
 *   only in `nat OUTPUT` (node processes), translates other clients while
 *   this one reaches a real server directly; evidence in another zone is
 *   another table.
 * - **Same zone in both directions** (`replyZone` equal to the candidate's
 *   zone): an entry with a directional zone was looked up elsewhere on its
 *   way back.
 * - **Created after the candidate**: absent from a complete read that
 *   started after this very entry was first seen (the tracker's
 *   `sameSince`), then present. A translated entry older than the candidate
 *   was made under rules that then did not translate the candidate (a DNAT
 *   rule since removed, its ESTABLISHED or TIME_WAIT connections still in
 *   the table); only a newer one proves the rule applies to this client
 *   now. An agent that just started knows nothing older than its first
 *   reads, so it waits: entries present when a key starts being watched
 *   never count. A newer connection that has already closed (TIME_WAIT)
 *   still counts.
 * - **No older one**: a translated entry of the same key (and zone) in this
 *   read that is not known to be newer than the candidate may be older: NAT
 *   already applied to this client's connections when the candidate was
 *   made, and not to it, so its path is exempt (a transparent proxy's own
 *   user, `-m owner ! --uid-owner`): keep it, whatever newer ones say.
 * - **Seen in this read**: only a read that lists the key vouches, and only
 *   with the entries it lists; an entry that is gone, or a read without
 *   evidence (a failed evidence dump, the key not asked, the key over the
 *   bounds), proves nothing. What is remembered between reads is only when
 *   each listed entry was last absent: an entry absent from a complete read
 *   and present in a later one was made after the first started, whatever
 *   reads lie between.
 *
 * Memory is bounded: at most `maxKeys` keys watched (the first un-NATed
 * candidates' keys of a read), and per key what the source keeps (see
 * `MAX_EVIDENCE_PER_KEY` in lib/model/snapshot.ts); a key over a bound proves
 * nothing in that read and starts again.
 *
 * @module
 */
import type { Snapshot, SnapshotOptions } from "../../model/snapshot.ts";
import { type ClientKey, clientKey, type Endpoint } from "../../model/tuple.ts";
import type { NatProvider, Vouch, VouchQuery } from "./provider.ts";

/** Options for {@linkcode TableEvidenceProvider}. */
export interface TableEvidenceOptions {
  /** Keys watched at most (un-NATed candidates' keys, first come); default 1024. */
  maxKeys?: number;
  /**
   * A key is asked in every read for its first this many listed reads, then
   * in every other read (halving the evidence cost of old stuck entries, such
   * as clients of dead external hosts); default 6.
   */
  everyReadFor?: number;
}

/** What is known of one translated entry of a watched key. */
interface Sighting {
  /**
   * `startedAt` of a read that watched the key and did not list the entry;
   * `undefined` when it was there from the watch's first read (not known to
   * be newer than anything).
   */
  absentAt: number | undefined;
  sport: number;
  replyZone: number;
  translated: Endpoint;
}

/** One key as its last complete read saw it: when that read started, and the entries in it. */
interface Watch {
  readAt: number;
  /** Reads that listed the key so far. */
  reads: number;
  /** By identity: the conntrack id, else `-1 - sport`. */
  entries: Map<number, Sighting>;
}

/**
 * Vouches for an un-NATed candidate when the same client's connection to the
 * same destination, in the same zone, made after the candidate was first
 * seen, is translated and in this read, and no translated one there may be
 * older.
 *
 * @example
 * ```ts
 * import { TableEvidenceProvider } from "./table_evidence.ts";
 * const p = new TableEvidenceProvider();
 * const stuck = {
 *   family: "ipv4" as const, src: "10.1.0.7", dst: "10.96.0.10", sport: 40000, dport: 80, zone: 0,
 *   timeout: 119, seenFrom: 0, seenTo: 1,
 * };
 * const key = "ipv4 10.1.0.7 10.96.0.10 80 0";
 * const newer = { sport: 40001, replyZone: 0, translated: { addr: "10.244.0.5", port: 8080 } };
 * const read = (at: number) => ({
 *   candidates: [{ ...stuck, seenFrom: at, seenTo: at + 1 }], scanned: 1, malformed: 0,
 *   startedAt: at, finishedAt: at + 2,
 * });
 * const evidence = (entries: typeof newer[]) => ({
 *   entries: new Map([[key, entries]]), overflow: new Set<string>(),
 * });
 * p.observe(read(0)); // first sighting of the candidate (sameSince 1); its key was not asked yet
 * p.wants()?.evidenceFor?.length; // => 1: its key is watched from the next read on
 * p.observe({ ...read(1000), evidence: evidence([]) }); // watched: no translated entry yet
 * p.observe({ ...read(2000), evidence: evidence([newer]) }); // the client's newer connection
 * p.vouch({ candidate: stuck, sameSince: 1, now: 2000 })?.reason;
 * // => "this client's newer connection (sport 40001) to it was translated to 10.244.0.5:8080"
 * ```
 */
export class TableEvidenceProvider implements NatProvider {
  readonly name = "table";
  readonly maxKeys: number;
  readonly everyReadFor: number;
  #watch = new Map<string, Watch>();
  #want = new Map<string, ClientKey>();
  #lastReadAt: number | undefined;

  constructor(options: TableEvidenceOptions = {}) {
    this.maxKeys = options.maxKeys ?? 1024;
    this.everyReadFor = options.everyReadFor ?? 6;
  }

  /** Keys watched now (for tests and metrics). */
  get watched(): number {
    return this.#watch.size;
  }

  /**
   * The keys of the last read's un-NATed candidates, each in every read for
   * its first `everyReadFor` listed reads (its client still retries about
   * once a second), then in every other read.
   */
  wants(): SnapshotOptions | undefined {
    const due: ClientKey[] = [];
    for (const [key, k] of this.#want) {
      const w = this.#watch.get(key);
      if (w === undefined || w.reads < this.everyReadFor || w.readAt !== this.#lastReadAt) {
        due.push(k);
      }
    }
    return due.length > 0 ? { evidenceFor: due } : undefined;
  }

  observe(s: Snapshot): void {
    this.#lastReadAt = s.startedAt;
    const ev = s.evidence;
    for (const key of ev?.overflow ?? []) this.#watch.delete(key); // unknown: start again
    for (const [key, list] of ev?.entries ?? []) {
      if (ev!.overflow.has(key) || !this.#want.has(key)) continue;
      // The key's last complete read before this one, if any.
      const old = this.#watch.get(key);
      const entries = new Map<number, Sighting>();
      for (const e of list) {
        const ident = e.id ?? -1 - e.sport;
        const seen = old?.entries.get(ident);
        entries.set(ident, {
          // Not in the key's last complete read: made after that read started. From the watch's
          // first read on: unknown (it may be older than anything).
          absentAt: seen !== undefined ? seen.absentAt : old?.readAt,
          sport: e.sport,
          replyZone: e.replyZone,
          translated: e.translated,
        });
      }
      this.#watch.set(key, { readAt: s.startedAt, entries, reads: (old?.reads ?? 0) + 1 });
    }
    // Watch every un-NATed candidate's key from the next read on, eligible or not yet.
    this.#want.clear();
    for (const c of s.candidates) {
      if (c.translated !== undefined) continue;
      const key = clientKey(c);
      if (this.#want.has(key)) continue;
      if (this.#want.size >= this.maxKeys) break;
      this.#want.set(key, {
        family: c.family,
        src: c.src,
        dst: c.dst,
        dport: c.dport,
        zone: c.zone,
      });
    }
    for (const key of this.#watch.keys()) if (!this.#want.has(key)) this.#watch.delete(key);
  }

  vouch({ candidate: c, sameSince, now }: VouchQuery): Vouch | undefined {
    if (c.translated !== undefined || sameSince === undefined) return undefined;
    const w = this.#watch.get(clientKey(c));
    // Only entries of this very read count: nothing is carried across reads.
    if (w === undefined || w.readAt !== now) return undefined;
    let newer: Sighting | undefined;
    for (const e of w.entries.values()) {
      if (e.replyZone !== c.zone) continue;
      // Absent from a read that started after this entry was first seen: made after it.
      if (e.absentAt !== undefined && e.absentAt > sameSince) {
        newer ??= e;
        continue;
      }
      // Not known to be newer, so perhaps older: NAT already applied to this client's
      // connections when the candidate was made, and did not to it (an exempt path, such as a
      // transparent proxy's own user): never vouch.
      return undefined;
    }
    if (newer !== undefined) {
      const e = newer;
      const t = e.translated;
      return {
        reason: `this client's newer connection (sport ${e.sport}) to it was translated to ${
          t.addr.includes(":") ? `[${t.addr}]` : t.addr
        }:${t.port}`,
      };
    }
    return undefined;
  }
}
