/**
 * Tells whether a ctnetlink dump works in this process's network namespace
 * (for `--source auto`).
 *
 * @module
 */
import { MessageBuilder } from "./builder.ts";
import { AF_INET, appendDumpRequest, IPS_TEMPLATE } from "./ctnetlink.ts";
import { DumpRetryError, runDump } from "./dump.ts";
import { Errno, ErrnoError } from "../os/errno.ts";
import { NetlinkSocket, type NetlinkTransport } from "./socket.ts";
import { openEventSocket } from "./events.ts";

/** The answer of {@linkcode checkNetlink}. */
export type NetlinkCheck = { ok: true } | { ok: false; reason: string };

/**
 * Options for {@linkcode checkNetlink}.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); dumps this host's conntrack table.
 * import { checkNetlink, type CheckNetlinkOptions } from "./capability.ts";
 * const options: CheckNetlinkOptions = { timeoutMs: 2000 };
 * const result = await checkNetlink(options);
 * ```
 */
export interface CheckNetlinkOptions {
  /** Time allowed; default 5000 ms. */
  timeoutMs?: number;
  /** Opens the socket; tests pass a fake kernel. */
  openTransport?: () => NetlinkTransport;
}

/**
 * Opens a `NETLINK_NETFILTER` socket and runs one ctnetlink dump to its end.
 * The dump asks for entries with `IPS_TEMPLATE` set, which the table never
 * holds, so on a kernel with status filtering it returns nothing however big
 * the table is; a kernel that rejects the filter gets a plain dump instead.
 * Resolves `{ ok: false, reason }` (never rejects) when FFI, the socket, the
 * permission (`EPERM` without `CAP_NET_ADMIN`) or the dump fails.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); dumps this host's conntrack table.
 * import { checkNetlink } from "./capability.ts";
 * const r = await checkNetlink();
 * if (!r.ok) console.log(`netlink unavailable: ${r.reason}`);
 * ```
 */
export async function checkNetlink(options: CheckNetlinkOptions = {}): Promise<NetlinkCheck> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const clock = () => performance.now();
  const deadline = clock() + timeoutMs;
  let t: NetlinkTransport | undefined;
  try {
    t = (options.openTransport ?? (() => NetlinkSocket.open({ recvBufferBytes: 1 << 20 })))();
    const buffer = new Uint8Array(64 * 1024);
    let filtered = true;
    for (let attempt = 0; attempt < 4; attempt++) {
      const seq = attempt + 1;
      const b = new MessageBuilder(64);
      appendDumpRequest(
        b,
        seq,
        AF_INET,
        filtered ? { status: { value: IPS_TEMPLATE, mask: IPS_TEMPLATE } } : {},
      );
      try {
        await runDump(t, seq, b.bytes(), {
          clock,
          deadline,
          pollIntervalMs: 100,
          buffer,
          onMessage: () => {},
          onFramingError: () => {},
        });
        return { ok: true };
      } catch (e) {
        if (
          filtered && e instanceof ErrnoError &&
          (e.errno === Errno.EINVAL || e.errno === Errno.EOPNOTSUPP)
        ) {
          filtered = false;
        } else if (!(e instanceof DumpRetryError)) {
          throw e;
        }
        t.close();
        t = (options.openTransport ?? (() => NetlinkSocket.open({ recvBufferBytes: 1 << 20 })))();
      }
    }
    return { ok: false, reason: "ctnetlink dump kept being interrupted" };
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  } finally {
    t?.close();
  }
}

/**
 * Tells whether conntrack events can be received here: the
 * `NFNLGRP_CONNTRACK_NEW` group can be joined, the event filter attaches,
 * and the namespace has not turned events off (`nf_conntrack_events` 0).
 * Resolves `{ ok: false, reason }` (never rejects). Needs a working
 * ctnetlink dump too (see {@linkcode checkNetlink}) for the source's resyncs.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN).
 * import { checkEvents } from "./capability.ts";
 * const r = await checkEvents();
 * if (!r.ok) console.log(`events unavailable: ${r.reason}`);
 * ```
 */
export async function checkEvents(
  options: { sysctlFile?: string; open?: () => { close(): void } } = {},
): Promise<NetlinkCheck> {
  const file = options.sysctlFile ?? "/proc/sys/net/netfilter/nf_conntrack_events";
  try {
    const v = (await Deno.readTextFile(file)).trim();
    if (v === "0") return { ok: false, reason: `conntrack events are off (${file} is 0)` };
  } catch {
    // Absent (older kernels have no such switch) or unreadable: events are on by default.
  }
  try {
    (options.open ?? (() => openEventSocket({ recvBufferBytes: 1 << 16 })))().close();
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}
