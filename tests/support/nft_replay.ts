/**
 * A netlink transport that answers from a capture (tests/fixtures/nft/),
 * the reply datagrams' sequence numbers and port id rewritten to the
 * request's. In order (default): the n-th request sent gets the n-th
 * recorded replies, and a request whose bytes (sequence number aside) differ
 * from the recorded one throws. By request: any recorded request gets its
 * replies, any other an `NLMSG_ERROR` with `ENOENT`; `rewrite` may change
 * the replies (e.g. another generation id).
 *
 * @module
 */
import type { NetlinkTransport } from "../../lib/netlink/socket.ts";

/** One recorded request and its replies (base64), as testbed/nft_driver.ts writes them. */
export interface Exchange {
  request: string;
  replies: string[];
}

/** An NLMSG_ERROR with -ENOENT answering `request` (base64). */
function enoent(request: Uint8Array): string {
  const d = new Uint8Array(36);
  const v = new DataView(d.buffer);
  v.setUint32(0, 36, true);
  v.setUint16(4, 2, true); // NLMSG_ERROR
  v.setInt32(16, -2, true);
  d.set(request.subarray(0, 16), 20);
  return btoa(String.fromCharCode(...d));
}

const unb64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

/** Request bytes with the sequence number zeroed. */
function withoutSeq(b: Uint8Array): string {
  const c = b.slice();
  c.fill(0, 8, 12);
  return c.join(",");
}

/** Replays `exchanges` in order; see the module doc. */
export class ReplayTransport implements NetlinkTransport {
  readonly portId = 4242;
  #exchanges: Exchange[];
  #byRequest: Map<string, string[]> | undefined;
  #rewrite: ((request: Uint8Array, reply: Uint8Array) => void) | undefined;
  #next = 0;
  #queue: Uint8Array[] = [];
  /** Requests sent so far. */
  sent: Uint8Array[] = [];

  constructor(
    exchanges: Exchange[],
    options: {
      byRequest?: boolean;
      rewrite?: (request: Uint8Array, reply: Uint8Array) => void;
    } = {},
  ) {
    this.#exchanges = exchanges;
    this.#rewrite = options.rewrite;
    if (options.byRequest) {
      this.#byRequest = new Map(exchanges.map((x) => [withoutSeq(unb64(x.request)), x.replies]));
    }
  }

  #replies(data: Uint8Array): string[] {
    if (this.#byRequest !== undefined) {
      return this.#byRequest.get(withoutSeq(data)) ?? [enoent(data)];
    }
    const x = this.#exchanges[this.#next++];
    if (x === undefined) throw new Error("replay: more requests than recorded");
    if (withoutSeq(unb64(x.request)) !== withoutSeq(data)) {
      throw new Error(`replay: request ${this.#next} differs from the recording`);
    }
    return x.replies;
  }

  send(data: Uint8Array): Promise<void> {
    this.sent.push(data.slice());
    const seq = new DataView(data.buffer, data.byteOffset).getUint32(8, true);
    this.#queue = this.#replies(data).map((r) => {
      const d = unb64(r);
      this.#rewrite?.(data, d);
      const v = new DataView(d.buffer);
      for (let off = 0; off + 16 <= d.length;) {
        const len = v.getUint32(off, true);
        v.setUint32(off + 8, seq, true);
        v.setUint32(off + 12, this.portId, true);
        off += (len + 3) & ~3;
        if (len < 16) break;
      }
      return d;
    });
    return Promise.resolve();
  }

  recv(buf: Uint8Array, _timeoutMs: number): Promise<number | null> {
    const d = this.#queue.shift();
    if (d === undefined) return Promise.resolve(null);
    buf.set(d.subarray(0, Math.min(d.length, buf.length)));
    return Promise.resolve(d.length);
  }

  tryRecv(_buf: Uint8Array): number | null {
    return null;
  }

  close(): void {}
}
