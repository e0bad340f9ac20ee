/**
 * The events source's event socket: subscribing, and draining what is
 * queued without waiting, with every way an event can be lost told apart
 * (the caller reads the table whole after any).
 *
 * @module
 */
import { classifyEvent, type ConntrackEvent } from "../netlink/events.ts";
import { NetlinkDecodeError, parseMessages } from "../netlink/message.ts";
import type { NetlinkTransport } from "../netlink/socket.ts";
import { Errno, ErrnoError } from "../os/errno.ts";

/** How events were lost: the socket overflowed, a message was cut or garbled, the socket failed. */
export type EventLoss = "overflow" | "malformed" | "error";

/** What one {@linkcode EventStream.drain} did. */
export interface DrainResult {
  /** It emptied the queue and lost nothing. */
  complete: boolean;
  /** The first way events were lost, if they were. */
  lost: EventLoss | undefined;
  /** Event messages received (decoded or not). */
  received: number;
  /** `ENOBUFS` errors: the socket's buffer overflowed. */
  overflows: number;
  /** Messages, or unframed rests of datagrams, that did not decode; the first one's reason. */
  malformed: number;
  firstMalformed: string | undefined;
}

/**
 * One event subscription, opened on demand. A socket error other than
 * `ENOBUFS` closes it (the next {@linkcode subscribe} opens a new one).
 *
 * @example
 * ```ts
 * import { EventStream } from "./event_stream.ts";
 * const sock = {
 *   portId: 1,
 *   tryRecv: () => null,
 *   recv: () => Promise.resolve(null),
 *   send: () => Promise.resolve(),
 *   close() {},
 * };
 * const s = new EventStream(() => sock, 1000);
 * s.subscribe(); // => true: it opened
 * (await s.drain(undefined, () => {})).complete; // => true
 * ```
 */
export class EventStream {
  #open: () => NetlinkTransport;
  #max: number;
  #t: NetlinkTransport | undefined;
  #buf = new Uint8Array(64 * 1024);

  /** `maxPerDrain`: event messages one drain handles at most (the rest wait). */
  constructor(open: () => NetlinkTransport, maxPerDrain: number) {
    this.#open = open;
    this.#max = maxPerDrain;
  }

  /** Opens the socket unless it is open; true when it opened one. */
  subscribe(): boolean {
    if (this.#t !== undefined) return false;
    this.#t = this.#open();
    return true;
  }

  /** Closes the socket and opens a new one (what was queued is dropped). */
  resubscribe(): void {
    this.close();
    this.subscribe();
  }

  close(): void {
    this.#t?.close();
    this.#t = undefined;
  }

  /**
   * Reads every queued event without waiting, yielding to the event loop
   * every 1,000 messages; `onEvent` gets each conntrack event. Not complete
   * when it stopped at `maxPerDrain` (events wait in the socket, some
   * perhaps older than what was read), or lost any: `ENOBUFS`, a datagram
   * cut short (the buffer grows for the next), a message that does not
   * frame or decode, a socket error (which closes the socket).
   */
  async drain(signal: AbortSignal | undefined, onEvent: (e: ConntrackEvent) => void) {
    const r: DrainResult = {
      complete: false,
      lost: undefined,
      received: 0,
      overflows: 0,
      malformed: 0,
      firstMalformed: undefined,
    };
    const lose = (why: EventLoss) => r.lost ??= why;
    const bad = (reason: string) => {
      r.malformed++;
      r.firstMalformed ??= reason;
      lose("malformed");
    };
    const t = this.#t;
    if (t === undefined) return r;
    while (r.received < this.#max) {
      signal?.throwIfAborted();
      let n: number | null;
      try {
        n = t.tryRecv(this.#buf);
      } catch (e) {
        if (e instanceof ErrnoError && e.errno === Errno.ENOBUFS) {
          r.overflows++;
          lose("overflow");
          continue;
        }
        this.close();
        lose("error");
        return r;
      }
      if (n === null) {
        r.complete = r.lost === undefined;
        return r;
      }
      if (n > this.#buf.length) {
        this.#buf = new Uint8Array(n);
        bad(`event datagram cut short (${n} bytes)`);
        continue;
      }
      const { messages, error } = parseMessages(this.#buf.subarray(0, n));
      if (error !== undefined) bad(`netlink framing: ${error}`);
      for (const m of messages) {
        r.received++;
        let ev;
        try {
          ev = classifyEvent(m);
        } catch (e) {
          if (!(e instanceof NetlinkDecodeError)) throw e;
          bad(e.message);
          continue;
        }
        if (ev !== undefined) onEvent(ev);
      }
      if (r.received % 1000 < messages.length) await new Promise((res) => setTimeout(res, 0));
    }
    return r;
  }
}
