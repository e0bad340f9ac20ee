/**
 * A netlink transport that answers from a capture (tests/fixtures/nft/):
 * the n-th request sent gets the n-th recorded reply datagrams, their
 * sequence numbers and port id rewritten to the request's. A request whose
 * bytes (sequence number aside) differ from the recorded one throws.
 *
 * @module
 */
import type { NetlinkTransport } from "../../lib/netlink/socket.ts";

/** One recorded request and its replies (base64), as testbed/nft_driver.ts writes them. */
export interface Exchange {
  request: string;
  replies: string[];
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
  #next = 0;
  #queue: Uint8Array[] = [];

  constructor(exchanges: Exchange[]) {
    this.#exchanges = exchanges;
  }

  send(data: Uint8Array): Promise<void> {
    const x = this.#exchanges[this.#next++];
    if (x === undefined) throw new Error("replay: more requests than recorded");
    if (withoutSeq(unb64(x.request)) !== withoutSeq(data)) {
      throw new Error(`replay: request ${this.#next} differs from the recording`);
    }
    const seq = new DataView(data.buffer, data.byteOffset).getUint32(8, true);
    this.#queue = x.replies.map((r) => {
      const d = unb64(r);
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
