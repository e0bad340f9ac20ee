/**
 * Deletes exact conntrack tuples through ctnetlink, and only while they are
 * still TCP `SYN_SENT` without `IPS_SEEN_REPLY`.
 *
 * @module
 */
import { type ParsedTuple, parseTuple, tupleKey } from "../model/tuple.ts";
import { MessageBuilder } from "../netlink/builder.ts";
import { decodeConntrack, entryTuple } from "../netlink/conntrack_entry.ts";
import {
  appendDeleteRequest,
  appendGetRequest,
  ctMsgType,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
} from "../netlink/ctnetlink.ts";
import {
  decodeError,
  NetlinkDecodeError,
  type NetlinkMessage,
  NLMSG_ERROR,
  parseMessages,
} from "../netlink/message.ts";
import { isSynSentUnreplied } from "../netlink/syn_sent.ts";
import { describeErrno, Errno, ErrnoError } from "../os/errno.ts";
import { NetlinkSocket, type NetlinkTransport } from "../netlink/socket.ts";
import type { Clock } from "../basics.ts";
import type { DeleteOutcome, Deleter, DeleteTarget } from "./deleter.ts";

/**
 * Options for {@linkcode NetlinkDeleter}.
 *
 * @example
 * ```ts
 * import { NetlinkDeleter, type NetlinkDeleterOptions } from "./netlink.ts";
 * const options: NetlinkDeleterOptions = { batchSize: 256, replyTimeoutMs: 2000 };
 * const deleter = new NetlinkDeleter(options);
 * ```
 */
export interface NetlinkDeleterOptions {
  /** Requests sent to the kernel in one `sendto`; default 128. */
  batchSize?: number;
  /**
   * Targets one poll may hand over ({@linkcode Deleter.maxPerPoll}); default
   * 10,000: a netlink delete is a hash lookup (docs/benchmarks.md).
   */
  maxPerPoll?: number;
  /** Monotonic milliseconds, for every wait and deadline; default `performance.now`. */
  clock?: Clock;
  /** Time to wait for the kernel's answers to one batch; default 5000 ms. */
  replyTimeoutMs?: number;
  /** Socket receive buffer to ask the kernel for; default 8 MiB. */
  recvBufferBytes?: number;
  /** Opens the socket; tests pass a fake kernel. Default {@linkcode NetlinkSocket.open}. */
  openTransport?: () => NetlinkTransport;
}

const CT_NEW = ctMsgType(IPCTNL_MSG_CT_NEW);

/** Handles one reply; returns an outcome when the request is answered. */
type ReplyHandler = (idx: number, m: NetlinkMessage) => boolean;

/**
 * A {@linkcode Deleter} over ctnetlink. For each tuple it
 *
 * 1. sends a non-dump `IPCTNL_MSG_CT_GET` of the exact original TCP tuple in
 *    its zone (`CTA_TUPLE_ORIG` + `CTA_ZONE`);
 * 2. checks the reply: TCP state `SYN_SENT` and no `IPS_SEEN_REPLY`. `ENOENT`,
 *    or an entry in any other state, is `already_gone` and is not touched;
 * 3. sends `IPCTNL_MSG_CT_DELETE` of the same tuple and zone with `CTA_ID` set
 *    to the id just read, with `NLM_F_ACK`. The kernel deletes only the entry
 *    with that id, so an entry that expired and was created again under the
 *    same tuple in between is answered `ENOENT` (`already_gone`), not deleted.
 *
 * Remaining race: the kernel has no "delete only if still unreplied"
 * operation, so between the GET (step 1) and the DELETE (step 3) the same
 * entry (same id) can get its reply (SYN-ACK) and is then still deleted. The
 * window is one batch round trip: `batchSize` GETs go out in one `sendto`,
 * their answers are read and checked, then the DELETEs go out in one
 * `sendto`; measured at 5-10 ms for a batch of 128 (1,000 tuples in 40-75 ms
 * on a 100k-entry table), less for smaller batches. An entry lost this way is recreated by
 * the connection's next packet where mid-stream pickup is allowed
 * (`nf_conntrack_tcp_loose`, on by default), but its NAT mapping, if any, is
 * gone, and a ruleset that drops `ct state invalid`/`new` non-SYN packets can
 * break that connection.
 *
 * Errors other than `ENOENT` (`EPERM`, …) give `failed` with the errno name and
 * the kernel's text; so do an invalid tuple, a lost reply and an abort. Many
 * tuples go out pipelined, matched back by sequence number. `delete` never
 * rejects.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); deletes from this host's conntrack table.
 * import { NetlinkDeleter } from "./netlink.ts";
 * const deleter = new NetlinkDeleter();
 * const [outcome] = await deleter.delete([
 *   { family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 },
 * ]);
 * console.log(outcome.result); // "deleted", "already_gone" or "failed"
 * deleter.close();
 * ```
 */
export class NetlinkDeleter implements Deleter {
  readonly name = "netlink";
  readonly maxPerPoll: number;
  #batchSize: number;
  #clock: Clock;
  #replyTimeoutMs: number;
  #open: () => NetlinkTransport;
  #t: NetlinkTransport | undefined;
  #seq = (Math.random() * 0x7fffffff) >>> 0;
  #buf = new Uint8Array(64 * 1024);
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: NetlinkDeleterOptions = {}) {
    this.#batchSize = Math.max(1, options.batchSize ?? 128);
    this.maxPerPoll = options.maxPerPoll ?? 10_000;
    this.#clock = options.clock ?? (() => performance.now());
    this.#replyTimeoutMs = options.replyTimeoutMs ?? 5000;
    const rcvbuf = options.recvBufferBytes ?? 8 << 20;
    this.#open = options.openTransport ??
      (() => NetlinkSocket.open({ recvBufferBytes: rcvbuf }));
  }

  /**
   * Each batch of `batchSize` waits at most `replyTimeoutMs` for the answers
   * to its GETs, then as long for those to its DELETEs.
   */
  worstCaseMs(count: number): number {
    return Math.ceil(count / this.#batchSize) * 2 * this.#replyTimeoutMs;
  }

  delete(tuples: readonly DeleteTarget[], signal?: AbortSignal): Promise<DeleteOutcome[]> {
    const run = this.#queue.then(() => this.#delete(tuples, signal));
    this.#queue = run.catch(() => {});
    return run;
  }

  close(): void {
    this.#closed = true;
    this.#t?.close();
    this.#t = undefined;
  }

  async #delete(tuples: readonly DeleteTarget[], signal?: AbortSignal): Promise<DeleteOutcome[]> {
    const out: (DeleteOutcome | undefined)[] = new Array(tuples.length);
    const fail = (i: number, error: string) => {
      out[i] ??= { tuple: tuples[i]!, result: "failed", error };
    };
    try {
      if (this.#closed) throw new Error("netlink deleter is closed");
      for (let start = 0; start < tuples.length; start += this.#batchSize) {
        signal?.throwIfAborted();
        const batch = new Map<number, ParsedTuple>();
        for (let i = start; i < Math.min(tuples.length, start + this.#batchSize); i++) {
          const p = parseTuple(tuples[i]!);
          if (p.ok) batch.set(i, p.tuple);
          else fail(i, `invalid tuple: ${p.problem}`);
        }
        if (batch.size) await this.#batch(tuples, batch, out, signal);
      }
    } catch (e) {
      // The socket may hold answers to requests we no longer wait for.
      this.#t?.close();
      this.#t = undefined;
      const why = signal?.aborted
        ? `aborted: ${signal.reason instanceof Error ? signal.reason.message : signal.reason}`
        : e instanceof Error
        ? e.message
        : String(e);
      for (let i = 0; i < tuples.length; i++) fail(i, why);
    }
    for (let i = 0; i < tuples.length; i++) fail(i, "internal error: no outcome");
    return out as DeleteOutcome[];
  }

  #nextSeq(): number {
    this.#seq = (this.#seq + 1) >>> 0;
    return this.#seq;
  }

  async #batch(
    tuples: readonly DeleteTarget[],
    batch: Map<number, ParsedTuple>,
    out: (DeleteOutcome | undefined)[],
    signal?: AbortSignal,
  ): Promise<void> {
    const t = this.#t ??= this.#open();
    const set = (i: number, result: DeleteOutcome["result"], error?: string) => {
      out[i] = error === undefined
        ? { tuple: tuples[i]!, result }
        : { tuple: tuples[i]!, result, error };
    };

    // 1. GET every tuple; keep the ids of those still SYN_SENT + unreplied.
    const ids = new Map<number, number>();
    const b = new MessageBuilder(batch.size * 100);
    const pending = new Map<number, number>();
    for (const [i, tuple] of batch) {
      const seq = this.#nextSeq();
      appendGetRequest(b, seq, tuple);
      pending.set(seq, i);
    }
    await t.send(b.bytes());
    let unanswered = await this.#collect(t, pending, signal, (i, m) => {
      if (m.type === NLMSG_ERROR) {
        const err = this.#errorOf(m);
        if (err === undefined) return false;
        if (err.errno === Errno.ENOENT) set(i, "already_gone");
        else if (err.errno === 0) set(i, "failed", "kernel acknowledged a GET without an entry");
        else set(i, "failed", `ctnetlink get: ${err.text}`);
        return true;
      }
      if (m.type !== CT_NEW) return false;
      let e;
      try {
        e = decodeConntrack(m.payload);
      } catch (err) {
        if (!(err instanceof NetlinkDecodeError)) throw err;
        set(i, "failed", `malformed ctnetlink reply: ${err.message}`);
        return true;
      }
      const got = entryTuple(e);
      if (e.proto !== IPPROTO_TCP || tupleKey(got) !== tupleKey(batch.get(i)!)) {
        set(i, "failed", `kernel answered with another entry: ${tupleKey(got)}`);
      } else if (tuples[i]!.id !== undefined && e.id !== tuples[i]!.id) {
        // Another entry took the tuple since the snapshot: not the one seen renewed.
        set(i, "already_gone");
      } else if (!isSynSentUnreplied(e)) {
        set(i, "already_gone");
      } else if (e.id === undefined) {
        set(i, "failed", "ctnetlink reply carries no CTA_ID");
      } else {
        ids.set(i, e.id);
      }
      return true;
    });
    if (unanswered !== undefined) {
      for (const i of pending.values()) {
        set(i, "failed", unanswered);
      }
    }
    if (ids.size === 0) return;

    // 2. DELETE those, each bound to the id just read.
    signal?.throwIfAborted();
    b.reset();
    pending.clear();
    for (const [i, id] of ids) {
      const seq = this.#nextSeq();
      appendDeleteRequest(b, seq, batch.get(i)!, id);
      pending.set(seq, i);
    }
    await t.send(b.bytes());
    unanswered = await this.#collect(t, pending, signal, (i, m) => {
      if (m.type !== NLMSG_ERROR) return false;
      const err = this.#errorOf(m);
      if (err === undefined) return false;
      if (err.errno === 0) set(i, "deleted");
      else if (err.errno === Errno.ENOENT) set(i, "already_gone");
      else set(i, "failed", `ctnetlink delete: ${err.text}`);
      return true;
    });
    if (unanswered !== undefined) {
      for (const i of pending.values()) {
        set(i, "failed", unanswered);
      }
    }
  }

  #errorOf(m: NetlinkMessage): { errno: number; text: string } | undefined {
    try {
      const info = decodeError(m);
      const text = describeErrno(info.errno) + (info.message ? `: ${info.message}` : "");
      return { errno: info.errno, text };
    } catch (e) {
      if (e instanceof NetlinkDecodeError) return undefined;
      throw e;
    }
  }

  /**
   * Reads answers until every sequence number in `pending` has one. Answers
   * to a batch are queued during the `sendto` itself, so they are drained
   * with non-waiting reads first; only if some are missing does it wait.
   * Returns why, when some requests stay unanswered (lost to `ENOBUFS`, or
   * past the timeout); they are left in `pending`.
   */
  async #collect(
    t: NetlinkTransport,
    pending: Map<number, number>,
    signal: AbortSignal | undefined,
    handle: ReplyHandler,
  ): Promise<string | undefined> {
    const deadline = this.#clock() + this.#replyTimeoutMs;
    let lost: string | undefined;
    while (pending.size > 0) {
      signal?.throwIfAborted();
      let n: number | null;
      try {
        n = t.tryRecv(this.#buf);
        if (n === null) {
          if (lost !== undefined) break;
          const left = deadline - this.#clock();
          if (left <= 0) break;
          n = await t.recv(this.#buf, Math.min(100, left));
          if (n === null) continue;
        }
      } catch (e) {
        if (e instanceof ErrnoError && e.errno === Errno.ENOBUFS) {
          lost = e.message; // answers were dropped; drain what is left, fail the rest
          continue;
        }
        throw e;
      }
      if (n > this.#buf.length) {
        this.#buf = new Uint8Array(n);
        lost = `reply of ${n} bytes did not fit the buffer`;
        continue;
      }
      for (const m of parseMessages(this.#buf.subarray(0, n)).messages) {
        if (m.pid !== t.portId) continue;
        const i = pending.get(m.seq);
        if (i === undefined) continue;
        if (handle(i, m)) pending.delete(m.seq);
      }
    }
    if (pending.size === 0) return undefined;
    return lost !== undefined
      ? `kernel answer lost (${lost}); outcome unknown`
      : `no answer from the kernel within ${this.#replyTimeoutMs} ms; outcome unknown`;
  }
}
