/**
 * Reads many exact entries at once: one non-dump `IPCTNL_MSG_CT_GET` per
 * tuple, pipelined in one `sendto`, answers matched back by sequence number.
 * A hash look-up each in the kernel, whatever the size of the table.
 *
 * @module
 */
import { type ParsedTuple, tupleKey } from "../model/tuple.ts";
import { MessageBuilder } from "./builder.ts";
import { type ConntrackEntry, decodeConntrack, entryTuple } from "./conntrack_entry.ts";
import { appendGetRequest, ctMsgType, IPCTNL_MSG_CT_NEW } from "./ctnetlink.ts";
import { describeErrno, Errno, ErrnoError } from "../os/errno.ts";
import {
  decodeError,
  NetlinkDecodeError,
  type NetlinkMessage,
  NLMSG_ERROR,
  parseMessages,
} from "./message.ts";
import type { NetlinkTransport } from "./socket.ts";

const CT_NEW = ctMsgType(IPCTNL_MSG_CT_NEW);

/** What the kernel said about one tuple. */
export type GetAnswer =
  /** The entry, read between `seenFrom` and `seenTo` (monotonic ms). */
  | { kind: "entry"; entry: ConntrackEntry; seenFrom: number; seenTo: number }
  /** No entry with that tuple in that zone (`ENOENT`). */
  | { kind: "gone" }
  /** Anything else: a kernel error, a lost or malformed answer, another tuple. */
  | { kind: "error"; error: string };

/** Options for {@linkcode getEntries}. */
export interface GetBatchOptions {
  clock: () => number;
  /** Time to wait for the answers to one batch. */
  timeoutMs: number;
  /** Receive buffer (one answer is well under 1 KiB). */
  buffer: Uint8Array;
  /** The next sequence number (unique on this socket). */
  nextSeq: () => number;
  /** Requests per `sendto`; default 128. */
  batchSize?: number;
  signal?: AbortSignal | undefined;
}

/**
 * GETs every tuple (in its zone) and resolves with one answer per tuple, in
 * order. Rejects only when sending fails or on abort; a lost answer
 * (`ENOBUFS`, timeout) is an `error` answer for that tuple.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); reads this host's conntrack table.
 * import { getEntries } from "./get_batch.ts";
 * import { NetlinkSocket } from "./socket.ts";
 * import { parseTuple } from "../model/tuple.ts";
 * const t = NetlinkSocket.open();
 * const r = parseTuple({ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 });
 * let seq = 1;
 * if (r.ok) {
 *   const [answer] = await getEntries(t, [r.tuple], {
 *     clock: () => performance.now(), timeoutMs: 2000, buffer: new Uint8Array(65536), nextSeq: () => seq++,
 *   });
 *   console.log(answer?.kind);
 * }
 * t.close();
 * ```
 */
export async function getEntries(
  t: NetlinkTransport,
  tuples: readonly ParsedTuple[],
  o: GetBatchOptions,
): Promise<GetAnswer[]> {
  const out: GetAnswer[] = new Array(tuples.length);
  const size = Math.max(1, o.batchSize ?? 128);
  for (let start = 0; start < tuples.length; start += size) {
    o.signal?.throwIfAborted();
    const pending = new Map<number, number>();
    const b = new MessageBuilder(Math.min(size, tuples.length - start) * 100);
    for (let i = start; i < Math.min(tuples.length, start + size); i++) {
      const seq = o.nextSeq();
      appendGetRequest(b, seq, tuples[i]!);
      pending.set(seq, i);
    }
    const sentAt = o.clock();
    await t.send(b.bytes());
    const why = await collect(t, pending, o, (i, type, payload) => {
      if (type === NLMSG_ERROR) {
        const err = errorOf(payload);
        if (err === undefined) return false;
        out[i] = err.errno === Errno.ENOENT
          ? { kind: "gone" }
          : { kind: "error", error: `ctnetlink get: ${err.text}` };
        return true;
      }
      if (type !== CT_NEW) return false;
      try {
        // A copy: the entry's addresses are views, and the buffer takes the next answers.
        const entry = decodeConntrack(payload.payload.slice());
        const got = tupleKey(entryTuple(entry));
        out[i] = got === tupleKey(tuples[i]!)
          ? { kind: "entry", entry, seenFrom: sentAt, seenTo: o.clock() }
          : { kind: "error", error: `kernel answered with another entry: ${got}` };
      } catch (e) {
        if (!(e instanceof NetlinkDecodeError)) throw e;
        out[i] = { kind: "error", error: `malformed ctnetlink reply: ${e.message}` };
      }
      return true;
    });
    for (const i of pending.values()) out[i] = { kind: "error", error: why ?? "no answer" };
  }
  return out;
}

function errorOf(m: NetlinkMessage): { errno: number; text: string } | undefined {
  try {
    const info = decodeError(m);
    return {
      errno: info.errno,
      text: describeErrno(info.errno) + (info.message ? `: ${info.message}` : ""),
    };
  } catch (e) {
    if (e instanceof NetlinkDecodeError) return undefined;
    throw e;
  }
}

/**
 * Reads answers until each sequence number in `pending` has one (they are
 * queued during the `sendto`, so non-waiting reads come first). Returns why
 * some stay unanswered; they are left in `pending`.
 */
async function collect(
  t: NetlinkTransport,
  pending: Map<number, number>,
  o: GetBatchOptions,
  handle: (i: number, type: number, m: NetlinkMessage) => boolean,
): Promise<string | undefined> {
  const deadline = o.clock() + o.timeoutMs;
  let lost: string | undefined;
  let buf = o.buffer;
  while (pending.size > 0) {
    o.signal?.throwIfAborted();
    let n: number | null;
    try {
      n = t.tryRecv(buf);
      if (n === null) {
        if (lost !== undefined) break;
        const left = deadline - o.clock();
        if (left <= 0) break;
        n = await t.recv(buf, Math.min(100, left));
        if (n === null) continue;
      }
    } catch (e) {
      if (e instanceof ErrnoError && e.errno === Errno.ENOBUFS) {
        lost = e.message;
        continue;
      }
      throw e;
    }
    if (n > buf.length) {
      buf = new Uint8Array(n);
      lost = `reply of ${n} bytes did not fit the buffer`;
      continue;
    }
    for (const m of parseMessages(buf.subarray(0, n)).messages) {
      if (m.pid !== t.portId) continue;
      const i = pending.get(m.seq);
      if (i !== undefined && handle(i, m.type, m)) pending.delete(m.seq);
    }
  }
  if (pending.size === 0) return undefined;
  return lost !== undefined
    ? `kernel answer lost (${lost})`
    : `no answer from the kernel within ${o.timeoutMs} ms`;
}
