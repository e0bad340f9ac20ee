/**
 * Test helpers: a scripted fake kernel behind the {@linkcode NetlinkTransport}
 * interface, message framing, and the captured fixtures.
 *
 * @module
 */
import type { Tuple } from "../../lib/model/tuple.ts";
import { formatAddress } from "../../lib/model/addr.ts";
import {
  AF_INET6,
  CTA_ID,
  CTA_IP_V4_SRC,
  CTA_IP_V6_SRC,
  CTA_PROTO_DST_PORT,
  CTA_PROTO_SRC_PORT,
  CTA_STATUS,
  CTA_TUPLE_IP,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_PROTO,
  CTA_ZONE,
  ctMsgType,
  IPCTNL_MSG_CT_NEW,
} from "../../lib/netlink/ctnetlink.ts";
import {
  AttrCursor,
  HOST_LE,
  type NetlinkMessage,
  NLM_F_CAPPED,
  NLM_F_MULTI,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  parseMessages,
} from "../../lib/netlink/message.ts";
import type { NetlinkTransport } from "../../lib/netlink/socket.ts";

/** The captured fixtures directory. */
export const FIXTURES = new URL("../fixtures/netlink/", import.meta.url);

/** Reads one captured fixture (`name.bin`). */
export function fixture(name: string): Uint8Array {
  return Deno.readFileSync(new URL(`${name}.bin`, FIXTURES));
}

/** The entry (`IPCTNL_MSG_CT_NEW`) payloads of a fixture, in order. */
export function entryPayloads(name: string): Uint8Array[] {
  return parseMessages(fixture(name)).messages
    .filter((m) => m.type === ctMsgType(IPCTNL_MSG_CT_NEW))
    .map((m) => m.payload);
}

/** One netlink message: header + payload, padded to 4 bytes. */
export function frame(
  type: number,
  flags: number,
  seq: number,
  pid: number,
  payload: Uint8Array,
): Uint8Array {
  const len = NLMSG_HDRLEN + payload.length;
  const out = new Uint8Array((len + 3) & ~3);
  const v = new DataView(out.buffer);
  v.setUint32(0, len, HOST_LE);
  v.setUint16(4, type, HOST_LE);
  v.setUint16(6, flags, HOST_LE);
  v.setUint32(8, seq, HOST_LE);
  v.setUint32(12, pid, HOST_LE);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** An `NLMSG_ERROR` answering `req` with `errno` (0 = ACK), echoing its header only. */
export function errorFor(req: NetlinkMessage, pid: number, errno: number): Uint8Array {
  const p = new Uint8Array(4 + NLMSG_HDRLEN);
  const v = new DataView(p.buffer);
  v.setInt32(0, -errno, HOST_LE);
  v.setUint32(4, NLMSG_HDRLEN + req.payload.length, HOST_LE);
  v.setUint16(8, req.type, HOST_LE);
  v.setUint16(10, req.flags, HOST_LE);
  v.setUint32(12, req.seq, HOST_LE);
  v.setUint32(16, pid, HOST_LE);
  return frame(NLMSG_ERROR, errno ? 0 : NLM_F_CAPPED, req.seq, pid, p);
}

/** `NLMSG_DONE` for `seq`, carrying `errno` (0 for a clean end). */
export function doneFor(seq: number, pid: number, errno = 0): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setInt32(0, -errno, HOST_LE);
  return frame(NLMSG_DONE, NLM_F_MULTI, seq, pid, p);
}

/** An entry message with the given payload, as a dump sends it. */
export function entryFor(seq: number, pid: number, payload: Uint8Array, flags = NLM_F_MULTI) {
  return frame(ctMsgType(IPCTNL_MSG_CT_NEW), flags, seq, pid, payload);
}

/** What the fake kernel puts in the receive queue: a datagram, or an error to throw. */
export type Delivery = Uint8Array | Error;

/**
 * How a {@linkcode FakeKernel} answers one request: the deliveries to queue
 * on the socket `s` it came from (replies carry `s.portId`).
 */
export type Respond = (req: NetlinkMessage, s: FakeSocket) => Delivery[];

/**
 * A scripted kernel that hands out any number of independent sockets
 * ({@linkcode FakeKernel.open}), as the real one does: each has its own port
 * id and receive queue, so dumps running at once on two sockets do not mix.
 * Every message sent on any of them is logged in `requests` and handed to
 * `respond`, whose deliveries are queued on the socket that sent it.
 */
export class FakeKernel {
  /** The port id of the first socket; the next ones count up from it. */
  static readonly FIRST_PORT_ID = 4242;
  /** Every request message received, on any socket, in order. */
  readonly requests: NetlinkMessage[] = [];
  /** The socket each of {@linkcode requests} was sent on. */
  readonly senders: FakeSocket[] = [];
  /** Every socket {@linkcode open} returned, in order. */
  readonly sockets: FakeSocket[] = [];
  /** `recv` and `tryRecv` calls on all sockets. */
  receives = 0;
  #respond: Respond;

  constructor(respond: Respond) {
    this.#respond = respond;
  }

  /** Times {@linkcode open} was called. */
  get opens(): number {
    return this.sockets.length;
  }

  /** No socket is open: every one opened has been closed (also true before the first). */
  get closed(): boolean {
    return this.sockets.every((s) => s.closed);
  }

  /** The sockets open now. */
  get openSockets(): FakeSocket[] {
    return this.sockets.filter((s) => !s.closed);
  }

  /** A freshly opened socket: a new port id, an empty queue. */
  open(): FakeSocket {
    const s = new FakeSocket(
      FakeKernel.FIRST_PORT_ID + this.sockets.length,
      (data, from) => this.#receive(data, from),
      () => this.receives++,
    );
    this.sockets.push(s);
    return s;
  }

  #receive(data: Uint8Array, from: FakeSocket): void {
    for (const m of parseMessages(data.slice()).messages) {
      this.requests.push(m);
      this.senders.push(from);
      from.queue.push(...this.#respond(m, from));
    }
  }
}

/**
 * One socket of a {@linkcode FakeKernel}. `recv` with an empty queue waits
 * a millisecond and reports a timeout.
 */
export class FakeSocket implements NetlinkTransport {
  /** What the kernel queued for this socket, taken by `recv`/`tryRecv` in order. */
  readonly queue: Delivery[] = [];
  closed = false;
  #toKernel: (data: Uint8Array, from: FakeSocket) => void;
  #onReceive: () => void;

  /** Use {@linkcode FakeKernel.open}. */
  constructor(
    readonly portId: number,
    toKernel: (data: Uint8Array, from: FakeSocket) => void,
    onReceive: () => void,
  ) {
    this.#toKernel = toKernel;
    this.#onReceive = onReceive;
  }

  send(data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error("fake socket closed"));
    this.#toKernel(data, this);
    return Promise.resolve();
  }

  #take(buf: Uint8Array): number | null {
    const d = this.queue.shift();
    if (d === undefined) return null;
    if (d instanceof Error) throw d;
    buf.set(d.subarray(0, Math.min(d.length, buf.length)));
    return d.length;
  }

  async recv(buf: Uint8Array, timeoutMs: number): Promise<number | null> {
    if (this.closed) throw new Error("fake socket closed");
    this.#onReceive();
    if (this.queue.length === 0) {
      await new Promise((r) => setTimeout(r, Math.min(1, timeoutMs)));
      return null;
    }
    return this.#take(buf);
  }

  tryRecv(buf: Uint8Array): number | null {
    if (this.closed) throw new Error("fake socket closed");
    this.#onReceive();
    return this.#take(buf);
  }

  close(): void {
    this.closed = true;
  }
}

/** A fake clock that advances by `step` on every read. */
export function steppingClock(step = 1): () => number {
  let t = 0;
  return () => (t += step);
}

/** What a GET/DELETE/dump request asked for, decoded by the fake kernel. */
export interface DecodedRequest {
  family: number;
  tuple?: Tuple;
  id?: number;
  /** `CTA_STATUS`, when the request filters on it. */
  status?: number;
  attrs: Set<number>;
}

/** Decodes the attributes of a request the code under test sent. */
export function decodeRequest(m: NetlinkMessage): DecodedRequest {
  const p = m.payload;
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const family = p[0]!;
  const out: DecodedRequest = { family, attrs: new Set() };
  const top = new AttrCursor(view, 4, p.length, "request");
  let src: Uint8Array | undefined, dst: Uint8Array | undefined;
  let sport = 0, dport = 0, zone = 0;
  while (top.next()) {
    out.attrs.add(top.type);
    if (top.type === CTA_TUPLE_ORIG) {
      const t = top.nested("tuple");
      while (t.next()) {
        const n = t.nested("inner");
        while (n.next()) {
          const data = p.subarray(n.start, n.start + n.size);
          if (t.type === CTA_TUPLE_IP) {
            if (n.type === CTA_IP_V4_SRC || n.type === CTA_IP_V6_SRC) src = data;
            else dst = data;
          } else if (t.type === CTA_TUPLE_PROTO) {
            if (n.type === CTA_PROTO_SRC_PORT) sport = view.getUint16(n.start, false);
            if (n.type === CTA_PROTO_DST_PORT) dport = view.getUint16(n.start, false);
          }
        }
      }
    } else if (top.type === CTA_ZONE) {
      zone = view.getUint16(top.start, false);
    } else if (top.type === CTA_ID) {
      out.id = view.getUint32(top.start, false);
    } else if (top.type === CTA_STATUS) {
      out.status = view.getUint32(top.start, false);
    }
  }
  if (src && dst) {
    out.tuple = {
      family: family === AF_INET6 ? "ipv6" : "ipv4",
      src: formatAddress(src),
      dst: formatAddress(dst),
      sport,
      dport,
      zone,
    };
  }
  return out;
}
