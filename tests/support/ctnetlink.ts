/**
 * A minimal ctnetlink client for tests: renews the timeout of one conntrack
 * entry in place, in any zone, inside a named network namespace.
 *
 * Why not the `conntrack` CLI: `conntrack -U` (1.4.7) rejects `--zone`, and
 * without it dumps every zone but sends each update without `CTA_ZONE`, so
 * the kernel applies all of them to the zone-0 entry (measured: three
 * same-tuple entries in zones 0, 5 and 7 → "3 flow entries have been updated",
 * only the zone-0 one renewed). `conntrack -I` of an existing tuple fails
 * ("Such conntrack exists"), also in `-R` batches. Deleting and re-inserting
 * would give the entry a new conntrack id and leave a window where it is
 * absent, which is not what a retransmitted SYN does.
 *
 * This sends what the kernel's own update path expects: one
 * `IPCTNL_MSG_CT_NEW` without `NLM_F_CREATE` (so it only ever changes an
 * existing entry, `ENOENT` otherwise) carrying the original tuple, `CTA_ZONE`
 * and `CTA_TIMEOUT`. `ctnetlink_change_conntrack()` then only sets the
 * timeout: state and status (`SYN_SENT`, `[UNREPLIED]`) are left alone.
 *
 * The socket is opened inside the namespace by switching the calling thread
 * into it with `setns(2)` for the duration of one synchronous `socket(2)` call
 * and switching back at once; a netlink socket stays bound to the namespace
 * it was created in. Only Deno FFI and libc are used (needs `--allow-ffi`,
 * part of `-A`, and root).
 *
 * @module
 */

const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_NETFILTER = 12;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLMSG_ERROR = 2;
const NLA_F_NESTED = 0x8000;
/** `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW`. */
const CT_NEW = (1 << 8) | 0;

const CTA_TUPLE_ORIG = 1;
const CTA_TIMEOUT = 7;
const CTA_ZONE = 18;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  11: "EAGAIN (no answer within the receive timeout)",
  13: "EACCES",
  17: "EEXIST",
  22: "EINVAL",
  93: "EPROTONOSUPPORT",
};

function errnoText(errno: number): string {
  return `errno ${errno}${ERRNO_NAMES[errno] ? ` ${ERRNO_NAMES[errno]}` : ""}`;
}

const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let libcCache: Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | undefined;

function libc(): Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"] {
  libcCache ??= Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  return libcCache.symbols;
}

function errno(): number {
  const p = libc().__errno_location();
  return p === null ? -1 : new Deno.UnsafePointerView(p).getInt32();
}

function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

/** The tuple of one entry to renew, as in `conntrack -I`. */
export interface CtTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** Default `tcp`. */
  proto?: "tcp" | "udp";
  /** Default 0. */
  zone?: number;
}

/** A netlink socket bound to one namespace's conntrack subsystem. */
export class CtNetlinkSocket {
  #fd: number;
  #seq = 1;
  #rx = new Uint8Array(8192);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /**
   * Opens a ctnetlink socket in the namespace `ip netns add NAME` made
   * (`/var/run/netns/NAME`). Throws when any system call fails.
   */
  static open(netnsName: string): CtNetlinkSocket {
    if (!/^[A-Za-z0-9_.-]+$/.test(netnsName) || netnsName.startsWith(".")) {
      throw new Error(`bad namespace name ${JSON.stringify(netnsName)}`);
    }
    const c = libc();
    const here = c.open(cstr("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC);
    if (here < 0) throw new Error(`open /proc/thread-self/ns/net: ${errnoText(errno())}`);
    let there = -1;
    try {
      there = c.open(cstr(`/var/run/netns/${netnsName}`), O_RDONLY | O_CLOEXEC);
      if (there < 0) throw new Error(`open /var/run/netns/${netnsName}: ${errnoText(errno())}`);
      if (c.setns(there, CLONE_NEWNET) !== 0) {
        throw new Error(`setns into ${netnsName}: ${errnoText(errno())}`);
      }
      // Nothing but this one synchronous call runs while the thread is inside.
      const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
      const socketErr = fd < 0 ? errno() : 0;
      if (c.setns(here, CLONE_NEWNET) !== 0) {
        // Every later child process would start in the test namespace: stop now.
        console.error(
          `FATAL: cannot return to the original network namespace: ${errnoText(errno())}`,
        );
        Deno.exit(70);
      }
      if (fd < 0) throw new Error(`netlink socket in ${netnsName}: ${errnoText(socketErr)}`);
      const sock = new CtNetlinkSocket(fd);
      // struct timeval { 2 s, 0 µs }: a lost answer fails instead of hanging the test.
      const tv = new Uint8Array(16);
      new DataView(tv.buffer).setBigInt64(0, 2n, true);
      if (c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) !== 0) {
        const e = errno();
        sock.close();
        throw new Error(`setsockopt SO_RCVTIMEO: ${errnoText(e)}`);
      }
      return sock;
    } finally {
      if (there >= 0) c.close(there);
      c.close(here);
    }
  }

  /**
   * Sets the timeout of the existing entry with this original tuple and zone
   * to `timeoutSec`. Returns `false` when there is no such entry (`ENOENT`),
   * `true` when it was renewed; throws on any other error.
   */
  renew(t: CtTuple, timeoutSec: number): boolean {
    if (this.#fd < 0) throw new Error("ctnetlink socket is closed");
    const seq = this.#seq++;
    const msg = buildUpdate(t, timeoutSec, seq);
    const c = libc();
    const sent = Number(c.send(this.#fd, msg, BigInt(msg.length), 0));
    if (sent !== msg.length) throw new Error(`netlink send: ${errnoText(errno())}`);
    for (;;) {
      const n = Number(c.recv(this.#fd, this.#rx, BigInt(this.#rx.length), 0));
      if (n < 0) throw new Error(`netlink recv: ${errnoText(errno())}`);
      const v = new DataView(this.#rx.buffer, 0, n);
      for (let off = 0; off + 16 <= n;) {
        const len = v.getUint32(off, true);
        const type = v.getUint16(off + 4, true);
        const rseq = v.getUint32(off + 8, true);
        if (len < 16) break;
        if (type === NLMSG_ERROR && rseq === seq && off + 20 <= n) {
          const err = -v.getInt32(off + 16, true);
          if (err === 0) return true;
          if (err === 2) return false;
          throw new Error(`ctnetlink update of ${describe(t)}: ${errnoText(err)}`);
        }
        off += (len + 3) & ~3;
      }
    }
  }

  /** Closes the socket; later calls to {@linkcode CtNetlinkSocket.renew} throw. */
  close(): void {
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function describe(t: CtTuple): string {
  return `${t.proto ?? "tcp"} ${t.src}:${t.sport} -> ${t.dst}:${t.dport} zone ${t.zone ?? 0}`;
}

/** Builds the `IPCTNL_MSG_CT_NEW` update message (exported for unit tests). */
export function buildUpdate(t: CtTuple, timeoutSec: number, seq: number): Uint8Array {
  const v6 = t.src.includes(":");
  if (v6 !== t.dst.includes(":")) throw new Error(`mixed address families in ${describe(t)}`);
  const src = v6 ? ipv6Bytes(t.src) : ipv4Bytes(t.src);
  const dst = v6 ? ipv6Bytes(t.dst) : ipv4Bytes(t.dst);
  if (src === undefined || dst === undefined) throw new Error(`bad address in ${describe(t)}`);
  for (const p of [t.sport, t.dport]) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error(`bad port in ${describe(t)}`);
  }
  const zone = t.zone ?? 0;
  if (!Number.isInteger(zone) || zone < 0 || zone > 65535) {
    throw new Error(`bad zone in ${describe(t)}`);
  }
  if (!Number.isInteger(timeoutSec) || timeoutSec < 0 || timeoutSec > 0xffffffff) {
    throw new Error(`bad timeout ${timeoutSec}`);
  }
  const ip = nest(CTA_TUPLE_IP, [
    attr(v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, src),
    attr(v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST, dst),
  ]);
  const proto = nest(CTA_TUPLE_PROTO, [
    attr(CTA_PROTO_NUM, new Uint8Array([t.proto === "udp" ? 17 : 6])),
    attr(CTA_PROTO_SRC_PORT, be16(t.sport)),
    attr(CTA_PROTO_DST_PORT, be16(t.dport)),
  ]);
  const body = concat([
    // struct nfgenmsg: family, NFNETLINK_V0, res_id 0
    new Uint8Array([v6 ? AF_INET6 : AF_INET, 0, 0, 0]),
    nest(CTA_TUPLE_ORIG, [ip, proto]),
    attr(CTA_TIMEOUT, be32(timeoutSec)),
    attr(CTA_ZONE, be16(zone)),
  ]);
  const msg = new Uint8Array(16 + body.length);
  const h = new DataView(msg.buffer);
  h.setUint32(0, msg.length, true);
  h.setUint16(4, CT_NEW, true);
  h.setUint16(6, NLM_F_REQUEST | NLM_F_ACK, true); // no NLM_F_CREATE: update only
  h.setUint32(8, seq, true);
  h.setUint32(12, 0, true);
  msg.set(body, 16);
  return msg;
}

function attr(type: number, payload: Uint8Array): Uint8Array {
  const len = 4 + payload.length;
  const out = new Uint8Array((len + 3) & ~3);
  const v = new DataView(out.buffer);
  v.setUint16(0, len, true);
  v.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

function nest(type: number, parts: Uint8Array[]): Uint8Array {
  return attr(type | NLA_F_NESTED, concat(parts));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function be16(n: number): Uint8Array {
  return new Uint8Array([n >> 8, n & 255]);
}

function be32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

function ipv4Bytes(s: string): Uint8Array | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return undefined;
  const b = m.slice(1).map(Number);
  return b.every((x) => x <= 255) ? new Uint8Array(b) : undefined;
}

function ipv6Bytes(s: string): Uint8Array | undefined {
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...head, ...new Array<string>(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return undefined;
    const g = parseInt(all[i], 16);
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 255;
  }
  return out;
}
