/**
 * Which NAT hook the client's next SYN passes: `output` when it comes from a
 * socket of this host, `prerouting` when it arrives from elsewhere. The
 * kernel decides by the packet's path, not by its source address, so the
 * address alone is never trusted: a forwarded SYN may carry a local source
 * (`accept_local`), and an `IP_TRANSPARENT` socket may send from a
 * non-local one. The socket table says which:
 *
 * - a local socket with this very 4-tuple: the SYN is sent by this host →
 *   `output`;
 * - no such socket and a non-local source: it can only arrive → `prerouting`;
 * - no such socket and a local source (a socket we could not see, or a
 *   forwarded packet with a local source): both, and the answers for both
 *   hooks must agree.
 *
 * Pure; the socket look-up is the {@linkcode SocketTable} interface
 * (`sock_diag.ts` asks the kernel).
 *
 * @example
 * ```ts
 * import { chooseHooks } from "./hooks.ts";
 * chooseHooks({ localSocket: true, localSource: false }); // => ["output"]
 * chooseHooks({ localSocket: false, localSource: false }); // => ["prerouting"]
 * chooseHooks({ localSocket: false, localSource: true }); // => ["prerouting", "output"]
 * ```
 *
 * @module
 */
import type { NatHook } from "./ruleset.ts";

/** What is known of where a SYN comes from. */
export interface SynOrigin {
  /** A socket of this network namespace has exactly this 4-tuple (not a listener). */
  readonly localSocket: boolean;
  /** The source address is one of this namespace's own addresses. */
  readonly localSource: boolean;
}

/** The hooks whose NAT rules decide this SYN; with two, both must agree. */
export function chooseHooks(o: SynOrigin): NatHook[] {
  if (o.localSocket) return ["output"];
  if (!o.localSource) return ["prerouting"];
  return ["prerouting", "output"];
}

/** A TCP connection's 4-tuple as the client sees it (client = `src`). */
export interface SocketQuery {
  readonly family: "ipv4" | "ipv6";
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  readonly sport: number;
  readonly dport: number;
}

/** The host's socket table, asked for one exact 4-tuple at a time. */
export interface SocketTable {
  /**
   * Whether a non-listening TCP socket of this namespace has exactly this
   * local (`src`, `sport`) and remote (`dst`, `dport`) address. Rejects when
   * the table cannot be asked (then no hook is chosen).
   */
  hasSocket(q: SocketQuery): Promise<boolean>;
  close(): void;
}
