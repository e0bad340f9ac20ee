/**
 * The socket table through `NETLINK_SOCK_DIAG`: one exact look-up
 * (`SOCK_DIAG_BY_FAMILY` without `NLM_F_DUMP`) per 4-tuple, answered by the
 * kernel from its connection hash, so the cost does not grow with the
 * number of sockets. The kernel's exact look-up falls back to a listener on
 * the local port; a listener, or an answer for another 4-tuple, is "no
 * socket".
 *
 * @example
 * ```ts ignore
 * // ignore: asks this host's socket table.
 * import { SockDiagTable } from "./sock_diag.ts";
 * const table = SockDiagTable.open();
 * const src = new Uint8Array([127, 0, 0, 1]), dst = new Uint8Array([127, 0, 0, 1]);
 * await table.hasSocket({ family: "ipv4", src, dst, sport: 40000, dport: 9 }); // => false
 * table.close();
 * ```
 *
 * @module
 */
import { HOST_LE, NLMSG_DONE, NLMSG_ERROR, parseMessages } from "../netlink/message.ts";
import { NetlinkSocket, type NetlinkTransport } from "../netlink/socket.ts";
import { ErrnoError } from "../os/errno.ts";
import type { SocketQuery, SocketTable } from "./hooks.ts";

/** `NETLINK_SOCK_DIAG`. */
export const NETLINK_SOCK_DIAG = 4;
/** `SOCK_DIAG_BY_FAMILY`. */
export const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 0x01;
const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO_TCP = 6;
const TCP_LISTEN = 10;
const ENOENT = 2;
/** `sizeof(struct inet_diag_req_v2)`. */
const REQ_LEN = 56;
/** `sizeof(struct inet_diag_msg)`. */
const MSG_LEN = 72;

/**
 * The request for one exact 4-tuple: `nlmsghdr` + `inet_diag_req_v2`, the
 * client (`src`, `sport`) as the local end. Pure.
 *
 * @example
 * ```ts
 * import { socketRequest } from "./sock_diag.ts";
 * const q = { family: "ipv4" as const, src: new Uint8Array([10, 0, 0, 1]),
 *   dst: new Uint8Array([10, 0, 0, 2]), sport: 40000, dport: 80 };
 * const r = socketRequest(q, 7);
 * [r.length, r[16], r[17], (r[24]! << 8) | r[25]!]; // => [72, 2, 6, 40000]
 * ```
 */
export function socketRequest(q: SocketQuery, seq: number): Uint8Array {
  const buf = new Uint8Array(16 + REQ_LEN);
  const v = new DataView(buf.buffer);
  v.setUint32(0, buf.length, HOST_LE);
  v.setUint16(4, SOCK_DIAG_BY_FAMILY, HOST_LE);
  v.setUint16(6, NLM_F_REQUEST, HOST_LE);
  v.setUint32(8, seq >>> 0, HOST_LE);
  const at = 16;
  buf[at] = q.family === "ipv4" ? AF_INET : AF_INET6;
  buf[at + 1] = IPPROTO_TCP;
  v.setUint32(at + 4, 0xffffffff, HOST_LE); // idiag_states: all
  v.setUint16(at + 8, q.sport, false);
  v.setUint16(at + 10, q.dport, false);
  buf.set(q.src, at + 12);
  buf.set(q.dst, at + 28);
  v.setUint32(at + 44, 0, HOST_LE); // idiag_if: any
  v.setUint32(at + 48, 0xffffffff, HOST_LE); // INET_DIAG_NOCOOKIE
  v.setUint32(at + 52, 0xffffffff, HOST_LE);
  return buf;
}

/**
 * Reads the kernel's answer to {@linkcode socketRequest}: `true` only for a
 * non-listening socket with exactly the asked 4-tuple; `false` for
 * `ENOENT`, a listener or another tuple. Throws {@linkcode ErrnoError} for
 * any other error. Pure.
 *
 * @example
 * ```ts
 * import { socketAnswer } from "./sock_diag.ts";
 * const q = { family: "ipv4" as const, src: new Uint8Array([10, 0, 0, 1]),
 *   dst: new Uint8Array([10, 0, 0, 2]), sport: 40000, dport: 80 };
 * const enoent = new Uint8Array(36);
 * const v = new DataView(enoent.buffer);
 * v.setUint32(0, 36, true); v.setUint16(4, 2, true); v.setInt32(16, -2, true);
 * socketAnswer(enoent, q); // => false
 * ```
 */
export function socketAnswer(datagram: Uint8Array, q: SocketQuery): boolean {
  const { messages, error } = parseMessages(datagram);
  if (error !== undefined) throw new Error(`sock_diag answer: ${error}`);
  for (const m of messages) {
    const v = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
    if (m.type === NLMSG_ERROR) {
      const code = m.payload.length >= 4 ? -v.getInt32(0, HOST_LE) : 0;
      if (code === 0) continue;
      if (code === ENOENT) return false;
      throw new ErrnoError(code, "sock_diag look-up");
    }
    if (m.type === NLMSG_DONE) continue;
    if (m.type !== SOCK_DIAG_BY_FAMILY || m.payload.length < MSG_LEN) continue;
    const p = m.payload;
    const family = q.family === "ipv4" ? AF_INET : AF_INET6;
    const n = q.src.length;
    if (p[0] !== family || p[1] === TCP_LISTEN) continue;
    if (v.getUint16(4, false) !== q.sport || v.getUint16(6, false) !== q.dport) continue;
    if (!same(p.subarray(8, 8 + n), q.src) || !same(p.subarray(24, 24 + n), q.dst)) continue;
    return true;
  }
  return false;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * {@linkcode SocketTable} over a `NETLINK_SOCK_DIAG` socket of this
 * namespace, opened at the first look-up (an agent that never asks opens
 * none).
 */
export class SockDiagTable implements SocketTable {
  #open: () => NetlinkTransport;
  #t: NetlinkTransport | undefined;
  #seq = 1;
  #buf = new Uint8Array(8192);

  constructor(open: () => NetlinkTransport) {
    this.#open = open;
  }

  /** A table over a sock_diag socket in the calling process's network namespace. */
  static open(): SockDiagTable {
    return new SockDiagTable(() =>
      NetlinkSocket.open({
        protocol: NETLINK_SOCK_DIAG,
        recvBufferBytes: 64 << 10,
        sendBufferBytes: 64 << 10,
      })
    );
  }

  async hasSocket(q: SocketQuery): Promise<boolean> {
    const seq = this.#seq++;
    const t = this.#t ??= this.#open();
    try {
      return await this.#ask(t, q, seq);
    } catch (e) {
      // A socket left with an unread answer would answer the next ask with it.
      this.close();
      throw e;
    }
  }

  async #ask(t: NetlinkTransport, q: SocketQuery, seq: number): Promise<boolean> {
    await t.send(socketRequest(q, seq));
    const deadline = performance.now() + 1000;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("sock_diag look-up: no answer within 1 s");
      const n = await t.recv(this.#buf, left);
      if (n === null) continue;
      if (n > this.#buf.length) throw new Error(`sock_diag answer of ${n} bytes cut short`);
      const datagram = this.#buf.subarray(0, n);
      const first = parseMessages(datagram).messages[0];
      if (first === undefined || first.seq !== seq) continue; // a late answer to an older ask
      return socketAnswer(datagram, q);
    }
  }

  close(): void {
    this.#t?.close();
    this.#t = undefined;
  }
}
