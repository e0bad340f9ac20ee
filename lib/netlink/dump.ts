/**
 * One netlink dump, start to `NLMSG_DONE`: send the request, read the
 * multipart reply, check sequence numbers and flags, hand each data message
 * to a callback together with the window in which the kernel produced it.
 *
 * @module
 */
import {
  decodeDone,
  decodeError,
  NetlinkDecodeError,
  type NetlinkMessage,
  NLM_F_DUMP_INTR,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  parseMessages,
} from "./message.ts";
import { Errno, ErrnoError } from "../os/errno.ts";
import type { NetlinkTransport } from "./socket.ts";

/**
 * The dump must be thrown away and started again: the kernel flagged it
 * `NLM_F_DUMP_INTR`, reported `NLMSG_OVERRUN`, a reply was lost (`ENOBUFS`),
 * or a datagram did not fit the buffer.
 *
 * @example
 * ```ts
 * import { DumpRetryError } from "./dump.ts";
 * const e = new DumpRetryError("netlink dump interrupted (NLM_F_DUMP_INTR)");
 * e instanceof DumpRetryError; // => true: throw the partial result away and dump again
 * ```
 */
export class DumpRetryError extends Error {
  /** A receive buffer of at least this many bytes is needed, when that was the cause. */
  readonly needBytes?: number | undefined;
  constructor(message: string, needBytes?: number) {
    super(message);
    this.name = "DumpRetryError";
    this.needBytes = needBytes;
  }
}

/**
 * The kernel did not finish the dump before the deadline.
 *
 * @example
 * ```ts
 * import { DumpTimeoutError } from "./dump.ts";
 * new DumpTimeoutError("netlink dump did not finish in time").name; // => "DumpTimeoutError"
 * ```
 */
export class DumpTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DumpTimeoutError";
  }
}

/**
 * Options for {@linkcode runDump}.
 *
 * @example
 * ```ts
 * import type { RunDumpOptions } from "./dump.ts";
 * const options: RunDumpOptions = {
 *   clock: () => performance.now(),
 *   deadline: performance.now() + 5000,
 *   pollIntervalMs: 100,
 *   buffer: new Uint8Array(64 * 1024),
 *   onMessage: (msg, from, to) => console.log(msg.type, from, to),
 *   onFramingError: (reason) => console.warn(reason),
 * };
 * ```
 */
export interface RunDumpOptions {
  /** Monotonic milliseconds. */
  clock: () => number;
  /** Clock value after which the dump is abandoned with {@linkcode DumpTimeoutError}. */
  deadline: number;
  /** Longest single wait for data before the deadline and `signal` are checked again. */
  pollIntervalMs: number;
  /** Receive buffer; one datagram must fit. */
  buffer: Uint8Array;
  signal?: AbortSignal | undefined;
  /** Each data (non-control) message of the dump, with the production window. */
  onMessage(msg: NetlinkMessage, seenFrom: number, seenTo: number): void;
  /** A datagram whose framing broke; the rest of it was skipped. */
  onFramingError(reason: string, bytes: Uint8Array): void;
}

/**
 * Sends `request` (one dump request with sequence number `seq`) and reads
 * until its `NLMSG_DONE`. Messages with another sequence number or port id
 * are ignored (left over from an earlier request).
 *
 * Production window of a message: the kernel fills a dump datagram inside
 * the `sendto` that starts the dump or inside the `recvmsg` that consumed the
 * previous datagram, so a message returned by receive call k was produced no
 * earlier than the start of call k-1 (the start of the send for k = 1) and no
 * later than the end of call k.
 *
 * Rejects with {@linkcode DumpRetryError} (start over), an
 * {@linkcode ErrnoError} for an error the kernel returned (the caller decides,
 * e.g. `EINVAL` for a filter it does not know), {@linkcode DumpTimeoutError},
 * or the signal's reason.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); dumps this host's conntrack table.
 * import { MessageBuilder } from "./builder.ts";
 * import { AF_UNSPEC, appendDumpRequest } from "./ctnetlink.ts";
 * import { runDump } from "./dump.ts";
 * import { NetlinkSocket } from "./socket.ts";
 * const sock = NetlinkSocket.open();
 * const b = new MessageBuilder();
 * appendDumpRequest(b, 1, AF_UNSPEC);
 * let n = 0;
 * await runDump(sock, 1, b.bytes(), {
 *   clock: () => performance.now(),
 *   deadline: performance.now() + 5000,
 *   pollIntervalMs: 100,
 *   buffer: new Uint8Array(65536),
 *   onMessage: () => n++,
 *   onFramingError: () => {},
 * });
 * sock.close();
 * ```
 */
export async function runDump(
  t: NetlinkTransport,
  seq: number,
  request: Uint8Array,
  o: RunDumpOptions,
): Promise<void> {
  o.signal?.throwIfAborted();
  let prevStart = o.clock();
  await t.send(request);
  for (;;) {
    o.signal?.throwIfAborted();
    const callStart = o.clock();
    const left = o.deadline - callStart;
    if (left <= 0) throw new DumpTimeoutError("netlink dump did not finish in time");
    let n: number | null;
    try {
      n = await t.recv(o.buffer, Math.min(o.pollIntervalMs, left));
    } catch (e) {
      if (e instanceof ErrnoError && e.errno === Errno.ENOBUFS) {
        throw new DumpRetryError(`netlink receive lost data: ${e.message}`);
      }
      throw e;
    }
    const callEnd = o.clock();
    if (n === null) continue;
    if (n > o.buffer.length) {
      throw new DumpRetryError(
        `netlink datagram of ${n} bytes does not fit the ${o.buffer.length}-byte buffer`,
        n,
      );
    }
    const bytes = o.buffer.subarray(0, n);
    const parsed = parseMessages(bytes);
    let done = false;
    for (const m of parsed.messages) {
      if (m.seq !== seq || m.pid !== t.portId) continue;
      if (m.flags & NLM_F_DUMP_INTR) {
        throw new DumpRetryError("netlink dump interrupted (NLM_F_DUMP_INTR)");
      }
      if (m.type === NLMSG_DONE) {
        const d = decodeDone(m);
        if (d.errno) throwKernelError(d.errno, d.message);
        done = true;
        break;
      }
      if (m.type === NLMSG_ERROR) {
        let info;
        try {
          info = decodeError(m);
        } catch (e) {
          if (!(e instanceof NetlinkDecodeError)) throw e;
          o.onFramingError(`unreadable NLMSG_ERROR: ${e.message}`, m.payload);
          continue;
        }
        if (info.errno === 0) continue; // an ACK; dumps end with DONE
        throwKernelError(info.errno, info.message);
      }
      if (m.type === NLMSG_NOOP) continue;
      if (m.type === NLMSG_OVERRUN) throw new DumpRetryError("netlink reported NLMSG_OVERRUN");
      o.onMessage(m, prevStart, callEnd);
    }
    if (parsed.error !== undefined) o.onFramingError(parsed.error, bytes);
    if (done) return;
    prevStart = callStart;
  }
}

function throwKernelError(errno: number, message?: string): never {
  if (errno === Errno.ENOBUFS || errno === Errno.EBUSY || errno === Errno.EINTR) {
    throw new DumpRetryError(new ErrnoError(errno, "netlink dump", message).message);
  }
  throw new ErrnoError(errno, "netlink dump", message);
}

/**
 * Runs `tasks` at once (dumps on sockets of their own) and settles when all
 * have. The first to fail aborts the signal the others were given, and its
 * error is what rejects; the caller's `signal` aborts them all.
 *
 * @example
 * ```ts
 * import { allOrFirstFailure } from "./dump.ts";
 * await allOrFirstFailure([
 *   async () => {},
 *   async (stop) => { stop.throwIfAborted(); },
 * ]);
 * ```
 */
export async function allOrFirstFailure(
  tasks: readonly ((stop: AbortSignal) => Promise<void>)[],
  signal?: AbortSignal,
): Promise<void> {
  signal?.throwIfAborted();
  // Aborted by the caller's signal or by the first task to fail.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let failure: { error: unknown } | undefined;
  try {
    await Promise.all(tasks.map(async (task) => {
      try {
        await task(stop.signal);
      } catch (error) {
        // The others then reject with this same error (the abort reason); the first counts.
        if (failure === undefined) {
          failure = { error };
          stop.abort(error);
        }
      }
    }));
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (failure !== undefined) throw failure.error;
}
