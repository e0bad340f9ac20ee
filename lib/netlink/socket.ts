/**
 * A `NETLINK_NETFILTER` socket over libc (FFI, lib/os/libc.ts).
 *
 * Calls that may sleep or do real work in the kernel run with
 * `nonblocking: true`, on a worker thread, so the event loop never waits for
 * them: `sendto` (the kernel handles a request, and starts a dump, inside
 * the call), `poll` (waiting for data, always with a short timeout so a
 * pending call never outlives an abort or `close()` by much), and the `recv`
 * that reads dump data (the kernel fills the next part of a dump inside that
 * call). errno is thread-local and those calls run on another thread, so
 * errors are learnt without it: `poll` reports `POLLERR` and
 * `getsockopt(SO_ERROR)` (on this thread) tells which error is pending.
 *
 * {@linkcode NetlinkSocket.tryRecv} is a synchronous `recv(MSG_DONTWAIT)`: it
 * never sleeps and reads errno directly. It is meant for draining replies
 * that are already queued (the answers to a batch of GET/DELETE requests,
 * which the kernel produced during the `sendto`); it must not be used while a
 * dump runs on the socket, because each `recvmsg` of a dump makes the kernel
 * walk the table for the next part.
 *
 * @module
 */
import { AF_NETLINK, HOST_LE, NETLINK_NETFILTER } from "./message.ts";
import { Errno, ErrnoError } from "../os/errno.ts";
import { errno, libc as lib } from "../os/libc.ts";

const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_ERROR = 4;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const SO_ATTACH_FILTER = 26;
const NETLINK_ADD_MEMBERSHIP = 1;
const NETLINK_NO_ENOBUFS = 5;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;

function num(v: number | bigint): number {
  return typeof v === "bigint" ? Number(v) : v;
}

/**
 * What {@linkcode NetlinkSocket.recv} and friends need: the part of a
 * netlink socket the sources and deleters use. Tests substitute a scripted
 * fake kernel.
 *
 * @example
 * ```ts
 * import { NetlinkSocket, type NetlinkTransport } from "./socket.ts";
 * const t: NetlinkTransport = NetlinkSocket.open();
 * const buf = new Uint8Array(65536);
 * const n = await t.recv(buf, 100); // null: nothing asked, nothing came
 * t.close();
 * ```
 */
export interface NetlinkTransport {
  /** The port id the kernel assigned (`nl_pid`); replies carry it. */
  readonly portId: number;
  /** Sends one datagram (one or more messages) to the kernel. Rejects with an {@linkcode ErrnoError}. */
  send(data: Uint8Array): Promise<void>;
  /**
   * Sends one datagram on this thread, now (`sendto(MSG_DONTWAIT)`): for
   * requests the kernel answers quickly (a GET, the first part of a small
   * dump). False when the socket would block; throws an {@linkcode ErrnoError}.
   * Optional: callers fall back to `send`.
   */
  trySend?(data: Uint8Array): boolean;
  /**
   * Waits up to `timeoutMs` for one datagram and copies it into `buf`.
   * Resolves with its full length (larger than `buf.length` when it was cut
   * short), or `null` on timeout. Rejects with an {@linkcode ErrnoError} for a
   * socket error such as `ENOBUFS`.
   */
  recv(buf: Uint8Array, timeoutMs: number): Promise<number | null>;
  /**
   * Reads one already-queued datagram without waiting: its length, or `null`
   * when none is queued. Throws an {@linkcode ErrnoError} on a socket error.
   */
  tryRecv(buf: Uint8Array): number | null;
  /** Closes the socket (after any call still running on a worker thread). */
  close(): void;
}

/**
 * Options for {@linkcode NetlinkSocket.open}.
 *
 * @example
 * ```ts
 * import { NetlinkSocket, type NetlinkSocketOptions } from "./socket.ts";
 * const options: NetlinkSocketOptions = { recvBufferBytes: 4 << 20 };
 * NetlinkSocket.open(options).close();
 * ```
 */
export interface NetlinkSocketOptions {
  /** Receive buffer to ask for (`SO_RCVBUFFORCE`, else `SO_RCVBUF`); default 8 MiB. */
  recvBufferBytes?: number;
  /**
   * The netlink protocol: `NETLINK_NETFILTER` (12, the default) or, for the
   * socket table, `NETLINK_SOCK_DIAG` (4).
   */
  protocol?: number;
  /** Send buffer to ask for; default 1 MiB. */
  sendBufferBytes?: number;
  /**
   * Multicast groups to join (`NETLINK_ADD_MEMBERSHIP`), e.g.
   * `NFNLGRP_CONNTRACK_NEW`. With groups, `NETLINK_NO_ENOBUFS` is cleared so
   * that a full receive buffer is reported (`ENOBUFS`), never silent.
   */
  groups?: readonly number[];
  /** A classic BPF program (`struct sock_filter` array, see `bpf.ts`) to attach. */
  filter?: Uint8Array;
}

/**
 * A bound `AF_NETLINK`/`NETLINK_NETFILTER` socket in the network namespace
 * of the calling process, with a large receive buffer, `NETLINK_CAP_ACK`
 * (acks echo only the request header) and `NETLINK_EXT_ACK` (errors carry
 * the kernel's text).
 *
 * @example
 * ```ts
 * import { NetlinkSocket } from "./socket.ts";
 * const sock = NetlinkSocket.open();
 * try {
 *   console.log("port id", sock.portId);
 * } finally {
 *   sock.close();
 * }
 * ```
 */
export class NetlinkSocket implements NetlinkTransport {
  readonly portId: number;
  #fd: number;
  #closed = false;
  #busy = 0;
  #pollfd = new Uint8Array(8);
  #kernelAddr = new Uint8Array(12);

  private constructor(fd: number, portId: number) {
    this.#fd = fd;
    this.portId = portId;
    const v = new DataView(this.#kernelAddr.buffer);
    v.setUint16(0, AF_NETLINK, HOST_LE); // nl_pid 0 = the kernel, no groups
    new DataView(this.#pollfd.buffer).setInt32(0, fd, HOST_LE);
  }

  /**
   * Creates and binds the socket. Throws an {@linkcode ErrnoError} (e.g.
   * `EPROTONOSUPPORT` without nfnetlink) or an `Error` when FFI is unavailable.
   */
  static open(options: NetlinkSocketOptions = {}): NetlinkSocket {
    const c = lib();
    const protocol = options.protocol ?? NETLINK_NETFILTER;
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw new ErrnoError(errno(), `socket(AF_NETLINK, protocol ${protocol})`);
    try {
      const addr = new Uint8Array(12);
      new DataView(addr.buffer).setUint16(0, AF_NETLINK, HOST_LE);
      if (c.bind(fd, addr, 12) !== 0) throw new ErrnoError(errno(), "bind(AF_NETLINK)");
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, 12, HOST_LE);
      if (c.getsockname(fd, addr, len) !== 0) throw new ErrnoError(errno(), "getsockname");
      const portId = new DataView(addr.buffer).getUint32(4, HOST_LE);
      setBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, options.recvBufferBytes ?? 8 << 20);
      setBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, options.sendBufferBytes ?? 1 << 20);
      // Best effort: older kernels lack them, and nothing depends on them.
      setInt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
      setInt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
      // The filter first: no unfiltered event is queued between joining and attaching.
      if (options.filter !== undefined) attachFilter(fd, options.filter);
      for (const group of options.groups ?? []) {
        if (!setInt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)) {
          throw new ErrnoError(errno(), `setsockopt(NETLINK_ADD_MEMBERSHIP, ${group})`);
        }
      }
      if ((options.groups?.length ?? 0) > 0 && !setInt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 0)) {
        throw new ErrnoError(errno(), "setsockopt(NETLINK_NO_ENOBUFS, 0)");
      }
      return new NetlinkSocket(fd, portId);
    } catch (e) {
      c.close(fd);
      throw e;
    }
  }

  /** The receive buffer size the kernel granted (it doubles the asked size). */
  get recvBufferBytes(): number {
    return getInt(this.#fd, SOL_SOCKET, SO_RCVBUF);
  }

  #checkOpen(): void {
    if (this.#closed) throw new ErrnoError(Errno.EBADF, "netlink socket is closed");
  }

  async #thread<T>(fn: () => Promise<T>): Promise<T> {
    this.#busy++;
    try {
      return await fn();
    } finally {
      this.#busy--;
      if (this.#closed && this.#busy === 0) this.#release();
    }
  }

  /** The pending socket error (`SO_ERROR`, which also clears it), or 0. */
  pendingError(): number {
    if (this.#closed) return 0;
    return getInt(this.#fd, SOL_SOCKET, SO_ERROR);
  }

  async send(data: Uint8Array): Promise<void> {
    this.#checkOpen();
    const n = await this.#thread(() =>
      lib().sendto_nb(this.#fd, data, BigInt(data.length), 0, this.#kernelAddr, 12)
    );
    if (num(n) < 0) {
      // errno stayed on the worker thread; SO_ERROR may still hold the cause.
      const e = this.pendingError();
      throw new ErrnoError(
        e || Errno.EIO,
        "sendto(netlink)",
        e ? undefined : "errno not available",
      );
    }
    if (num(n) !== data.length) {
      throw new ErrnoError(Errno.EMSGSIZE, `sendto(netlink) sent ${n} of ${data.length} bytes`);
    }
  }

  trySend(data: Uint8Array): boolean {
    this.#checkOpen();
    const n = num(
      lib().sendto(this.#fd, data, BigInt(data.length), MSG_DONTWAIT, this.#kernelAddr, 12),
    );
    if (n === data.length) return true;
    if (n >= 0) throw new ErrnoError(Errno.EMSGSIZE, `sendto(netlink) sent ${n} of ${data.length}`);
    const e = errno();
    if (e === Errno.EAGAIN || e === Errno.EINTR) return false;
    throw new ErrnoError(e, "sendto(netlink)");
  }

  async recv(buf: Uint8Array, timeoutMs: number): Promise<number | null> {
    this.#checkOpen();
    const pfd = new DataView(this.#pollfd.buffer);
    pfd.setInt16(4, POLLIN, HOST_LE);
    pfd.setInt16(6, 0, HOST_LE);
    const ready = await this.#thread(() =>
      lib().poll_nb(this.#pollfd, 1n, Math.max(0, Math.ceil(timeoutMs)))
    );
    this.#checkOpen();
    if (ready === 0) return null;
    if (ready < 0) return null; // EINTR: the caller checks its deadline and calls again
    const revents = pfd.getInt16(6, HOST_LE);
    if (revents & POLLNVAL) throw new ErrnoError(Errno.EBADF, "poll(netlink)");
    if (revents & (POLLERR | POLLHUP)) {
      const e = this.pendingError();
      if (e) throw new ErrnoError(e, "recv(netlink)");
      if (!(revents & POLLIN)) return null;
    }
    const n = num(
      await this.#thread(() =>
        lib().recv_nb(this.#fd, buf, BigInt(buf.length), MSG_DONTWAIT | MSG_TRUNC)
      ),
    );
    this.#checkOpen();
    if (n >= 0) return n;
    const e = this.pendingError();
    // Without errno, a failure right after POLLIN is either an error that
    // the recv itself consumed (ENOBUFS) or a lost race (EAGAIN). Report it as
    // ENOBUFS: callers restart what they were doing, which is right for both.
    throw new ErrnoError(
      e || Errno.ENOBUFS,
      "recv(netlink)",
      e ? undefined : "errno not available",
    );
  }

  tryRecv(buf: Uint8Array): number | null {
    this.#checkOpen();
    const n = num(lib().recv(this.#fd, buf, BigInt(buf.length), MSG_DONTWAIT | MSG_TRUNC));
    if (n >= 0) return n;
    const e = errno();
    if (e === Errno.EAGAIN || e === Errno.EINTR) return null;
    throw new ErrnoError(e, "recv(netlink)");
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#busy === 0) this.#release();
  }

  #release(): void {
    if (this.#fd >= 0) {
      lib().close(this.#fd);
      this.#fd = -1;
    }
  }
}

function setInt(fd: number, level: number, opt: number, value: number): boolean {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, value, HOST_LE);
  return lib().setsockopt(fd, level, opt, b, 4) === 0;
}

function getInt(fd: number, level: number, opt: number): number {
  const b = new Uint8Array(4);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, 4, HOST_LE);
  if (lib().getsockopt(fd, level, opt, b, len) !== 0) return 0;
  return new DataView(b.buffer).getInt32(0, HOST_LE);
}

/** `SO_ATTACH_FILTER` with a `struct sock_fprog` pointing at `program` (the kernel copies it). */
function attachFilter(fd: number, program: Uint8Array): void {
  if (program.length === 0 || program.length % 8 !== 0 || program.length / 8 > 0xffff) {
    throw new RangeError(`a BPF program of ${program.length} bytes is not whole instructions`);
  }
  const fprog = new Uint8Array(16);
  const v = new DataView(fprog.buffer);
  v.setUint16(0, program.length / 8, HOST_LE);
  v.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(program))), HOST_LE);
  if (lib().setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16) !== 0) {
    throw new ErrnoError(errno(), "setsockopt(SO_ATTACH_FILTER)");
  }
}

/** The forced option needs CAP_NET_ADMIN; the plain one is capped by net.core.*mem_max. */
function setBuffer(fd: number, force: number, plain: number, bytes: number): void {
  if (!setInt(fd, SOL_SOCKET, force, bytes)) setInt(fd, SOL_SOCKET, plain, bytes);
}
