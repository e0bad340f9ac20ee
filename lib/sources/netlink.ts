/**
 * Reads the conntrack table through a ctnetlink dump and returns its
 * candidates, asking the kernel to filter where it can.
 *
 * @module
 */
import type { Snapshot, SnapshotOptions } from "../model/snapshot.ts";
import type { ClientKey } from "../model/tuple.ts";
import type { EvidenceRead } from "../model/snapshot.ts";
import { MessageBuilder } from "../netlink/builder.ts";
import { AF_UNSPEC, appendDumpRequest, type DumpFilter } from "../netlink/ctnetlink.ts";
import { allOrFirstFailure, DumpRetryError, runDump } from "../netlink/dump.ts";
import { Errno, ErrnoError } from "../os/errno.ts";
import type { NetlinkMessage } from "../netlink/message.ts";
import { NetlinkSocket, type NetlinkTransport } from "../netlink/socket.ts";
import type { NetlinkDumpReport, NetlinkSourceOptions } from "./netlink_options.ts";
import type { Clock } from "../basics.ts";
import { EvidenceCollector, evidenceFamilies } from "./evidence_dump.ts";
import {
  dumpFamilies,
  evidenceFilter,
  learnFromSnapshot,
  modeAfterRejection,
  type NetlinkFilterMode,
  snapshotFilter,
} from "./netlink_filter.ts";
import { Tally, tallyMessage } from "./netlink_tally.ts";
import type { Source } from "./source.ts";

/** Dumps one snapshot runs at once, each on its own socket: IPv4 and IPv6. */
const MAX_DUMPS = 2;
/** Sockets in all: the snapshot's, then as many for evidence dumps running beside it. */
const SLOTS = 2 * MAX_DUMPS;

/** A socket, opened on first use, and its receive buffer. */
interface Slot {
  transport: NetlinkTransport | undefined;
  buffer: Uint8Array;
}

/** What one set of parallel dumps asks for, and what it does with each message. */
interface DumpJob {
  filter: DumpFilter;
  /** A data message of dump `i` (socket `i`), produced between `from` and `to`. */
  onMessage(i: number, m: NetlinkMessage, from: number, to: number): void;
  onFramingError(reason: string, bytes: Uint8Array): void;
}

/**
 * A {@linkcode Source} over ctnetlink (`IPCTNL_MSG_CT_GET` with
 * `NLM_F_DUMP`). It asks the kernel to send only TCP entries without
 * `IPS_SEEN_REPLY` (see {@linkcode NetlinkFilterMode}), and keeps, of what
 * comes back, only TCP `SYN_SENT` entries without `IPS_SEEN_REPLY`.
 *
 * - A kernel that rejects the filter (`EINVAL`/`EOPNOTSUPP`) makes the source
 *   step down (`proto+status` → `status` → `none`) and dump again at once; a
 *   kernel that silently ignores part of it (a non-TCP entry in a TCP-only
 *   dump; replied entries in two snapshots running) makes it stop asking for
 *   that part from the next snapshot on. {@linkcode filterMode},
 *   {@linkcode lastDump} and `onFilterModeChange` tell which mode was used.
 * - A dump flagged `NLM_F_DUMP_INTR`, `NLMSG_OVERRUN` or `ENOBUFS` is thrown
 *   away whole and started again, up to `maxRetries` times; then the
 *   snapshot rejects. Any other kernel error (`EPERM`, …) rejects it.
 * - A message that does not decode is counted in `malformed` and skipped.
 * - `seenFrom`/`seenTo` of a candidate: from the start of the receive call
 *   before the one that returned it (the send, for the first) to the end of
 *   the call that returned it.
 * - `scanned` counts the entry messages the kernel sent, so with kernel
 *   filtering it is the number of unreplied TCP entries, not the table size.
 *
 * The `proto+status` and `proto` modes dump the two families at once, on two
 * sockets: the kernel walks the whole table for each dump, inside the socket
 * calls, which run off the main thread (a `proto+status` snapshot of a
 * 100,000-entry table took 48–55 ms instead of 88–99 ms on two cores). The
 * first dump to fail stops the other, and the attempt fails or is retried as
 * a whole. The sockets are opened on first use in the network namespace of
 * the process, kept between snapshots, and all reopened after any failed or
 * aborted dump.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); dumps this host's conntrack table.
 * import { NetlinkSource } from "./netlink.ts";
 * const source = new NetlinkSource();
 * try {
 *   const snap = await source.snapshot();
 *   console.log(source.filterMode, snap.scanned, snap.candidates.length);
 * } finally {
 *   source.close();
 * }
 * ```
 */
export class NetlinkSource implements Source {
  readonly name = "netlink";
  #clock: Clock;
  #mode: NetlinkFilterMode;
  #modeNote: string | undefined;
  #maxRetries: number;
  #timeoutMs: number;
  #pollMs: number;
  #recvBufferBytes: number;
  #open: () => NetlinkTransport;
  #onMode: ((mode: NetlinkFilterMode, reason: string) => void) | undefined;
  #maxCandidates: number;
  #onRetry: ((reason: string) => void) | undefined;
  /** One per dump that can run at once: a netlink socket runs one dump at a time. */
  #slots: Slot[];
  #seq = (Math.random() * 0x7fffffff) >>> 0;
  #closed = false;
  #queue: Promise<unknown> = Promise.resolve();
  #repliedLastSnapshot = false;
  #last: NetlinkDumpReport | undefined;

  constructor(options: NetlinkSourceOptions = {}) {
    this.#clock = options.clock ?? (() => performance.now());
    this.#mode = options.filter ?? "proto+status";
    this.#maxRetries = options.maxRetries ?? 3;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#pollMs = options.pollIntervalMs ?? 100;
    this.#recvBufferBytes = options.recvBufferBytes ?? 8 << 20;
    const bufferBytes = options.bufferBytes ?? 64 * 1024;
    this.#slots = Array.from({ length: SLOTS }, () => ({
      transport: undefined,
      buffer: new Uint8Array(bufferBytes),
    }));
    this.#onMode = options.onFilterModeChange;
    this.#maxCandidates = options.maxCandidates ?? Infinity;
    this.#onRetry = options.onRetry;
    this.#open = options.openTransport ??
      (() => NetlinkSocket.open({ recvBufferBytes: this.#recvBufferBytes }));
  }

  /** The filter mode the next dump will ask for. */
  get filterMode(): NetlinkFilterMode {
    return this.#mode;
  }

  /** Why the mode last changed, if it did. */
  get filterModeReason(): string | undefined {
    return this.#modeNote;
  }

  /** What the last successful snapshot did. */
  get lastDump(): NetlinkDumpReport | undefined {
    return this.#last;
  }

  /**
   * One snapshot. With `options.evidenceFor`, an evidence dump runs beside
   * it on sockets of its own, so the two kernel walks overlap: one dump per
   * family asked about, in which the kernel sends only TCP entries with
   * `IPS_DST_NAT` (as far as the filter mode allows); each is checked again
   * here, by its tuples. The snapshot carries `evidence` when that dump
   * succeeded (else none: nothing is known).
   */
  snapshot(signal?: AbortSignal, options: SnapshotOptions = {}): Promise<Snapshot> {
    // One snapshot at a time (a socket runs one dump at a time): a second call waits for the first.
    const ask = options.evidenceFor ?? [];
    const run = this.#queue.then(async () => {
      const [snap, evidence] = await Promise.all([
        this.#snapshot(signal),
        ask.length > 0 ? this.#findEvidence(ask, signal).catch(() => undefined) : undefined,
      ]);
      return evidence === undefined ? snap : { ...snap, evidence };
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  close(): void {
    this.#closed = true;
    this.#reset();
  }

  async #findEvidence(keys: readonly ClientKey[], signal?: AbortSignal): Promise<EvidenceRead> {
    if (this.#closed) throw new Error("netlink source is closed");
    const deadline = this.#clock() + this.#timeoutMs;
    const mode = this.#mode;
    const families = dumpFamilies(mode)[0] === AF_UNSPEC ? [AF_UNSPEC] : evidenceFamilies(keys);
    const filter = evidenceFilter(mode);
    for (let failures = 0;; failures++) {
      const found = new EvidenceCollector(keys);
      try {
        await this.#dumpAll(
          families,
          { filter, onMessage: (_i, m) => found.add(m), onFramingError: () => {} },
          deadline,
          signal,
          MAX_DUMPS,
        );
        return found.read();
      } catch (e) {
        this.#reset(MAX_DUMPS, SLOTS);
        if (signal?.aborted) throw signal.reason;
        if (e instanceof DumpRetryError && failures < this.#maxRetries) {
          this.#onRetry?.(e.message);
          continue;
        }
        throw e instanceof Error ? e : new Error(String(e));
      }
    }
  }

  #setMode(mode: NetlinkFilterMode, reason: string): void {
    if (mode === this.#mode) return;
    this.#mode = mode;
    this.#modeNote = reason;
    this.#onMode?.(mode, reason);
  }

  /** Closes the sockets `from` to `to` (default: every one); the next dump opens new ones. */
  #reset(from = 0, to = SLOTS): void {
    for (const slot of this.#slots.slice(from, to)) {
      slot.transport?.close();
      slot.transport = undefined;
    }
  }

  async #snapshot(signal?: AbortSignal): Promise<Snapshot> {
    if (this.#closed) throw new Error("netlink source is closed");
    const startedAt = this.#clock();
    const deadline = startedAt + this.#timeoutMs;
    const retries: string[] = [];
    let attempts = 0;
    let failures = 0;
    for (;;) {
      signal?.throwIfAborted();
      attempts++;
      const mode = this.#mode;
      const families = dumpFamilies(mode);
      const tally = new Tally(this.#maxCandidates, families.length, mode === "proto+status");
      try {
        await this.#dumpAll(
          families,
          {
            filter: snapshotFilter(mode),
            onMessage: (i, m, from, to) => tallyMessage(m, from, to, tally, tally.candidates[i]!),
            onFramingError: (reason, bytes) => {
              // The unframed rest of a datagram counts as one message seen and malformed.
              tally.scanned++;
              tally.bad(`netlink framing: ${reason}`, bytes);
            },
          },
          deadline,
          signal,
        );
      } catch (e) {
        this.#reset(0, MAX_DUMPS);
        if (signal?.aborted) throw signal.reason;
        const next = modeAfterRejection(mode);
        if (
          e instanceof ErrnoError && next !== undefined &&
          (e.errno === Errno.EINVAL || e.errno === Errno.EOPNOTSUPP)
        ) {
          const why = `kernel rejected the ${mode} dump filter (${e.code}); asking for ${next}`;
          retries.push(why);
          this.#setMode(next, why);
          continue;
        }
        if (e instanceof DumpRetryError) {
          const need = e.needBytes;
          if (need !== undefined) {
            // Either socket may get the next big datagram.
            for (const slot of this.#slots) {
              if (slot.buffer.length < need) slot.buffer = new Uint8Array(need);
            }
          }
          retries.push(e.message);
          this.#onRetry?.(e.message);
          if (++failures <= this.#maxRetries) continue;
          throw new Error(
            `netlink dump failed ${failures} times in a row, no snapshot taken: ${e.message}`,
            { cause: e },
          );
        }
        throw e instanceof Error ? e : new Error(String(e));
      }
      this.#learn(mode, tally);
      this.#last = { mode, attempts, retries };
      return tally.snapshot(startedAt, this.#clock());
    }
  }

  /** Stops asking for filter parts the kernel evidently ignores. */
  #learn(mode: NetlinkFilterMode, tally: Tally): void {
    const lesson = learnFromSnapshot(mode, tally, this.#repliedLastSnapshot);
    for (const c of lesson.changes) this.#setMode(c.mode, c.reason);
    this.#repliedLastSnapshot = lesson.repliedBefore;
  }

  /**
   * Runs one dump per family, all at once, dump `i` on socket `i`. Settles
   * when every dump has: the first failure aborts the others (each notices
   * within one receive call, at most `pollIntervalMs`), and is what rejects.
   */
  async #dumpAll(
    families: number[],
    job: DumpJob,
    deadline: number,
    signal?: AbortSignal,
    slotBase = 0,
  ): Promise<void> {
    if (families.length === 1) {
      return await this.#dump(0, families[0]!, job, deadline, signal, slotBase);
    }
    await allOrFirstFailure(
      families.map((family, i) => (stop: AbortSignal) =>
        this.#dump(i, family, job, deadline, stop, slotBase)
      ),
      signal,
    );
  }

  async #dump(
    i: number,
    family: number,
    job: DumpJob,
    deadline: number,
    signal?: AbortSignal,
    slotBase = 0,
  ): Promise<void> {
    const slot = this.#slots[slotBase + i]!;
    const t = slot.transport ??= this.#open();
    const seq = this.#seq = (this.#seq + 1) >>> 0;
    const b = new MessageBuilder(96);
    appendDumpRequest(b, seq, family, job.filter);
    await runDump(t, seq, b.bytes(), {
      clock: this.#clock,
      deadline,
      pollIntervalMs: this.#pollMs,
      buffer: slot.buffer,
      signal,
      onMessage: (m, from, to) => job.onMessage(i, m, from, to),
      onFramingError: job.onFramingError,
    });
  }
}

export type { NetlinkDumpReport, NetlinkSourceOptions } from "./netlink_options.ts";
