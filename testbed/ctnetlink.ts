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
 * Messages are encoded with the agent's own codec (`lib/netlink/codec.ts`)
 * and sent over its socket (`lib/netlink/socket.ts`). What is test-specific
 * is where that socket lives: it is opened inside the namespace by switching
 * the calling thread into it with `setns(2)` for the duration of the
 * synchronous {@linkcode NetlinkSocket.open} and switching back at once; a
 * netlink socket stays bound to the namespace it was created in. Needs
 * `--allow-ffi` (part of `-A`) and root.
 *
 * @module
 */
import { MessageBuilder } from "../lib/netlink/builder.ts";
import {
  appendTuple,
  CTA_TIMEOUT,
  CTA_TUPLE_ORIG,
  CTA_ZONE,
  ctMsgType,
  familyNumber,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
  IPPROTO_UDP,
} from "../lib/netlink/ctnetlink.ts";
import {
  decodeError,
  NLM_F_ACK,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  parseMessages,
} from "../lib/netlink/message.ts";
import { parseTuple } from "../lib/model/tuple.ts";
import { Errno, ErrnoError } from "../lib/os/errno.ts";
import { NetlinkSocket } from "../lib/netlink/socket.ts";

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
/** How long {@linkcode CtNetlinkSocket.renew} waits for the kernel's answer. */
const REPLY_TIMEOUT_MS = 2000;

/** The libc calls `NetlinkSocket` does not make: entering a namespace. */
const NS_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let nsLibc: Deno.DynamicLibrary<typeof NS_SYMBOLS>["symbols"] | undefined;

function libc(): Deno.DynamicLibrary<typeof NS_SYMBOLS>["symbols"] {
  nsLibc ??= Deno.dlopen("libc.so.6", NS_SYMBOLS).symbols;
  return nsLibc;
}

/** errno of the last failed call on this thread. */
function lastErrno(): number {
  const p = libc().__errno_location();
  return p === null ? Errno.EIO : new Deno.UnsafePointerView(p).getInt32();
}

/** A read-only descriptor of a namespace file such as `/proc/thread-self/ns/net`. */
function openNs(path: string): number {
  const fd = libc().open(new TextEncoder().encode(`${path}\0`), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw new ErrnoError(lastErrno(), `open ${path}`);
  return fd;
}

/**
 * Runs `fn` (synchronous: no other JavaScript runs meanwhile) with the
 * calling thread inside the namespace `ip netns add NAME` made
 * (`/var/run/netns/NAME`), and returns it to its own namespace afterwards.
 */
export function insideNetns<T>(netnsName: string, fn: () => T): T {
  if (!/^[A-Za-z0-9_.-]+$/.test(netnsName) || netnsName.startsWith(".")) {
    throw new Error(`bad namespace name ${JSON.stringify(netnsName)}`);
  }
  const c = libc();
  const here = openNs("/proc/thread-self/ns/net");
  let there = -1;
  try {
    there = openNs(`/var/run/netns/${netnsName}`);
    if (c.setns(there, CLONE_NEWNET) !== 0) {
      throw new ErrnoError(lastErrno(), `setns into ${netnsName}`);
    }
    try {
      return fn();
    } finally {
      if (c.setns(here, CLONE_NEWNET) !== 0) {
        // Every later child process would start in the test namespace: stop now.
        console.error(
          `FATAL: cannot return to the original network namespace: ${
            new ErrnoError(lastErrno(), "setns").message
          }`,
        );
        Deno.exit(70);
      }
    }
  } finally {
    if (there >= 0) c.close(there);
    c.close(here);
  }
}

/** The tuple of one entry to renew, as in `conntrack -I`. */
export interface CtTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** Default `tcp`. */
  proto?: "tcp" | "udp" | undefined;
  /** Default 0. */
  zone?: number | undefined;
}

/** A netlink socket bound to one namespace's conntrack subsystem. */
export class CtNetlinkSocket {
  #sock: NetlinkSocket | undefined;
  #seq = 1;
  #rx = new Uint8Array(8192);
  /** The renewal in progress: one at a time, so each reads its own answer. */
  #last: Promise<unknown> = Promise.resolve();

  private constructor(sock: NetlinkSocket) {
    this.#sock = sock;
  }

  /**
   * Opens a ctnetlink socket in the namespace `ip netns add NAME` made
   * (`/var/run/netns/NAME`). Throws when any system call fails.
   */
  static open(netnsName: string): CtNetlinkSocket {
    return new CtNetlinkSocket(insideNetns(netnsName, () => NetlinkSocket.open()));
  }

  /**
   * Sets the timeout of the existing entry with this original tuple and zone
   * to `timeoutSec`. Resolves `false` when there is no such entry (`ENOENT`),
   * `true` when it was renewed; rejects on any other error, and when the
   * kernel does not answer within 2 s. Calls run one after another.
   */
  renew(t: CtTuple, timeoutSec: number): Promise<boolean> {
    const run = this.#last.then(() => this.#renew(t, timeoutSec));
    this.#last = run.catch(() => {});
    return run;
  }

  async #renew(t: CtTuple, timeoutSec: number): Promise<boolean> {
    const sock = this.#sock;
    if (sock === undefined) throw new Error("ctnetlink socket is closed");
    const seq = this.#seq++;
    await sock.send(buildUpdate(t, timeoutSec, seq));
    const deadline = performance.now() + REPLY_TIMEOUT_MS;
    for (;;) {
      // The kernel answers inside the send, so the ack is normally queued already.
      const left = deadline - performance.now();
      const n = sock.tryRecv(this.#rx) ?? (left > 0 ? await sock.recv(this.#rx, left) : null);
      if (n === null) {
        if (performance.now() < deadline) continue;
        throw new Error(`ctnetlink update of ${describe(t)}: no answer within 2 s`);
      }
      for (const m of parseMessages(this.#rx.subarray(0, n)).messages) {
        if (m.type !== NLMSG_ERROR || m.seq !== seq) continue;
        const { errno } = decodeError(m);
        if (errno === 0) return true;
        if (errno === Errno.ENOENT) return false;
        throw new ErrnoError(errno, `ctnetlink update of ${describe(t)}`);
      }
    }
  }

  /** Closes the socket; later calls to {@linkcode CtNetlinkSocket.renew} reject. */
  close(): void {
    this.#sock?.close();
    this.#sock = undefined;
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
  const parsed = parseTuple({
    family: t.src.includes(":") ? "ipv6" : "ipv4",
    src: t.src,
    dst: t.dst,
    sport: t.sport,
    dport: t.dport,
    zone: t.zone ?? 0,
  });
  if (!parsed.ok) throw new Error(`${parsed.problem} in ${describe(t)}`);
  const tuple = parsed.tuple;
  if (!Number.isInteger(timeoutSec) || timeoutSec < 0 || timeoutSec > 0xffffffff) {
    throw new Error(`bad timeout ${timeoutSec}`);
  }
  const b = new MessageBuilder();
  // No NLM_F_CREATE: update only.
  b.beginMessage(
    ctMsgType(IPCTNL_MSG_CT_NEW),
    NLM_F_REQUEST | NLM_F_ACK,
    seq,
    familyNumber(tuple.family),
  );
  appendTuple(b, CTA_TUPLE_ORIG, tuple, t.proto === "udp" ? IPPROTO_UDP : IPPROTO_TCP);
  b.be32(CTA_TIMEOUT, timeoutSec);
  b.be16(CTA_ZONE, tuple.zone);
  b.endMessage();
  return b.bytes();
}
