/**
 * One TCP SYN at a time, built here and sent through a raw socket
 * (`IPPROTO_RAW`: the header is ours, `IP_HDRINCL` / `IPV6_HDRINCL`) that
 * lives in a chosen network namespace. No process is started per SYN and no
 * TCP socket exists, so nothing retransmits and nothing answers for us.
 *
 * A raw packet sent in a namespace goes through that namespace's
 * `NF_INET_LOCAL_OUT` (nat OUTPUT) and POSTROUTING, like a TCP socket's SYN:
 * conntrack tracks it and the nat hooks see it. Its `skb->sk` is the raw
 * socket, so owner matches (`meta skuid`, `-m owner --uid-owner`) see the
 * file system uid the socket was created with: {@linkcode RawSynSender}
 * keeps one socket per (family, uid), each created under `setfsuid(uid)`
 * (the process stays root; only the new socket's credentials change).
 *
 * Sockets are created with the calling thread switched into the namespace
 * (`insideNetns` of `../ctnetlink.ts`); a socket stays in the namespace it was
 * created in. Needs root and `--allow-ffi`.
 *
 * @module
 */
import { insideNetns } from "../ctnetlink.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_RAW = 255;
const IPPROTO_TCP = 6;
const EPERM = 1;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  setfsuid: { parameters: ["u32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

function lib(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return libc;
}

function errno(): number {
  const p = lib().__errno_location();
  return p === null ? -1 : new Deno.UnsafePointerView(p).getInt32();
}

/** One SYN: addresses as raw bytes (4 or 16, both the same family), ports host numbers. */
export interface Syn {
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  /** The file system uid of the sending socket (owner matches). Default 0. */
  uid?: number;
  /** TCP flags; default SYN (0x02). E.g. 0x12 for a SYN/ACK answering one. */
  flags?: number;
  /** The acknowledgment number; default 0. */
  ack?: number;
}

/** The ones' complement sum of `bytes` (big-endian 16-bit words) added to `sum`. */
function sum16(bytes: Uint8Array, sum = 0): number {
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A 20-byte TCP SYN header with its checksum over the family's pseudo header. */
function tcpSyn(s: Syn, seq: number): Uint8Array {
  const tcp = new Uint8Array(20);
  const v = new DataView(tcp.buffer);
  v.setUint16(0, s.sport);
  v.setUint16(2, s.dport);
  v.setUint32(4, seq >>> 0);
  tcp[12] = 5 << 4; // data offset: 5 words, no options
  v.setUint32(8, (s.ack ?? 0) >>> 0);
  tcp[13] = s.flags ?? 0x02; // SYN
  v.setUint16(14, 64240);
  const pseudo = new Uint8Array(s.src.length * 2 + (s.src.length === 4 ? 4 : 8));
  pseudo.set(s.src, 0);
  pseudo.set(s.dst, s.src.length);
  const pv = new DataView(pseudo.buffer);
  if (s.src.length === 4) {
    pv.setUint16(8, IPPROTO_TCP);
    pv.setUint16(10, tcp.length);
  } else {
    pv.setUint32(32, tcp.length);
    pv.setUint32(36, IPPROTO_TCP);
  }
  v.setUint16(16, fold(sum16(tcp, sum16(pseudo))));
  return tcp;
}

/**
 * The whole packet (IPv4 or IPv6 header + TCP SYN) for `s`.
 *
 * @example
 * ```ts
 * import { synPacket } from "./raw_syn.ts";
 * const p = synPacket({ src: new Uint8Array([198, 51, 100, 1]), dst: new Uint8Array([203, 0, 113, 1]),
 *   sport: 40000, dport: 80 }, 1);
 * p.length; // => 40
 * ```
 */
export function synPacket(s: Syn, seq: number): Uint8Array {
  if (s.src.length !== s.dst.length || (s.src.length !== 4 && s.src.length !== 16)) {
    throw new Error("a SYN needs two IPv4 or two IPv6 addresses");
  }
  const tcp = tcpSyn(s, seq);
  if (s.src.length === 4) {
    const p = new Uint8Array(20 + tcp.length);
    const v = new DataView(p.buffer);
    p[0] = 0x45;
    v.setUint16(2, p.length);
    v.setUint16(4, seq & 0xffff);
    v.setUint16(6, 0x4000); // don't fragment
    p[8] = 64;
    p[9] = IPPROTO_TCP;
    p.set(s.src, 12);
    p.set(s.dst, 16);
    v.setUint16(10, fold(sum16(p.subarray(0, 20))));
    p.set(tcp, 20);
    return p;
  }
  const p = new Uint8Array(40 + tcp.length);
  const v = new DataView(p.buffer);
  v.setUint32(0, 0x60000000);
  v.setUint16(4, tcp.length);
  p[6] = IPPROTO_TCP;
  p[7] = 64;
  p.set(s.src, 8);
  p.set(s.dst, 24);
  p.set(tcp, 40);
  return p;
}

function sockaddr(dst: Uint8Array): Uint8Array {
  if (dst.length === 4) {
    const a = new Uint8Array(16);
    new DataView(a.buffer).setUint16(0, AF_INET, true);
    a.set(dst, 4);
    return a;
  }
  const a = new Uint8Array(28);
  new DataView(a.buffer).setUint16(0, AF_INET6, true);
  a.set(dst, 8);
  return a;
}

/** Raw sockets in one namespace, one per (family, uid), sending {@linkcode Syn}s. */
export class RawSynSender {
  readonly netns: string;
  #fds = new Map<string, number>();
  #seq = 1;

  constructor(netns: string) {
    this.netns = netns;
  }

  #socket(family: 4 | 6, uid: number): number {
    const key = `${family}/${uid}`;
    const known = this.#fds.get(key);
    if (known !== undefined) return known;
    const c = lib();
    const fd = insideNetns(this.netns, () => {
      c.setfsuid(uid);
      try {
        return c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
      } finally {
        c.setfsuid(0);
      }
    });
    if (fd < 0) throw new Error(`raw socket in ${this.netns}: errno ${errno()}`);
    this.#fds.set(key, fd);
    return fd;
  }

  /**
   * Sends one SYN (synchronously: the packet has left the socket when this
   * returns). `false` when the namespace's own rules dropped it on the way
   * out (`sendto` fails with `EPERM` for a netfilter drop at OUTPUT).
   */
  send(s: Syn): boolean {
    const fd = this.#socket(s.src.length === 4 ? 4 : 6, s.uid ?? 0);
    const packet = synPacket(s, this.#seq++);
    const to = sockaddr(s.dst);
    const n = lib().sendto(fd, packet, BigInt(packet.length), 0, to, to.length);
    if (Number(n) === packet.length) return true;
    const e = errno();
    if (Number(n) < 0 && e === EPERM) return false;
    throw new Error(`sendto in ${this.netns} sent ${n} of ${packet.length}: errno ${e}`);
  }

  /** Closes every socket. */
  close(): void {
    for (const fd of this.#fds.values()) lib().close(fd);
    this.#fds.clear();
  }
}
