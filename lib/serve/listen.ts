/**
 * `--listen`: where the HTTP server listens, parsed once into a
 * {@linkcode ListenAddress} and spelled back for logs.
 *
 * @module
 */
import { canonicalIPv4, canonicalIPv6 } from "../model/addr.ts";

/** Where the HTTP server listens. */
export interface ListenAddress {
  hostname: string;
  port: number;
  /**
   * `:PORT`: every address of the node. Bound as `[::]`, which on Linux
   * (`net.ipv6.bindv6only=0`, the default) takes IPv4 connections too; where
   * the kernel has no IPv6, as `0.0.0.0` ({@linkcode openListener}).
   */
  all?: true;
}

/**
 * Default `--listen`: loopback only (nothing is exposed off the node unless
 * asked; the DaemonSet binds the node IP). The port is outside the Prometheus
 * exporter range and the Kubernetes component ports.
 */
export const DEFAULT_LISTEN = "127.0.0.1:10395";

/**
 * `HOST:PORT`, with IPv6 hosts in brackets.
 *
 * @example
 * ```ts
 * import { formatListen } from "./listen.ts";
 * formatListen({ hostname: "::1", port: 10395 }); // => "[::1]:10395"
 * ```
 */
export function formatListen(l: ListenAddress): string {
  if (l.all) return `:${l.port}`;
  return l.hostname.includes(":") ? `[${l.hostname}]:${l.port}` : `${l.hostname}:${l.port}`;
}

/**
 * `0.0.0.0:10395`, `[::1]:9999`, `[10.0.0.7]:10395`, `localhost:8080`, or
 * `:10395` for every address (IPv4 and IPv6) → address (port 0 picks a free
 * one); `undefined` for anything else.
 *
 * @example
 * ```ts
 * import { parseListen } from "./listen.ts";
 * parseListen("[10.0.0.7]:10395"); // => { hostname: "10.0.0.7", port: 10395 }
 * parseListen(":10395"); // => { hostname: "::", port: 10395, all: true }
 * parseListen("0.0.0.0:70000"); // => undefined
 * ```
 */
export function parseListen(s: string): ListenAddress | undefined {
  const any = /^:(0|[1-9][0-9]{0,4})$/.exec(s);
  if (any) {
    const port = Number(any[1]);
    return port > 65535 ? undefined : { hostname: "::", port, all: true };
  }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(0|[1-9][0-9]{0,4})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  if (m[1] !== undefined) {
    // Brackets around IPv4 too, for a `[$(NODE_IP)]:PORT` that fits either family.
    if (!m[1].includes(":")) {
      return canonicalIPv4(m[1]) === undefined ? undefined : { hostname: m[1], port };
    }
    const v6 = canonicalIPv6(m[1]);
    return v6 === undefined ? undefined : { hostname: v6, port };
  }
  const host = m[2]!;
  if (/^[0-9.]+$/.test(host)) {
    return canonicalIPv4(host) === undefined ? undefined : { hostname: host, port };
  }
  if (
    !/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
      .test(host)
  ) return undefined;
  return { hostname: host, port };
}

/**
 * Opens the TCP listener for `l`. For every address (`:PORT`) that is `[::]`,
 * dual-stack on Linux, and `0.0.0.0` where the IPv6 socket cannot be made (a
 * kernel booted with `ipv6.disable=1`); a port in use is not retried.
 *
 * @example
 * ```ts
 * import { openListener, parseListen } from "./listen.ts";
 * const l = openListener(parseListen(":0")!);
 * (l.addr as Deno.NetAddr).hostname; // => "::"
 * l.close();
 * ```
 */
export function openListener(
  l: ListenAddress,
  listen: (o: Deno.TcpListenOptions & { transport: "tcp" }) => Deno.Listener = Deno.listen,
): Deno.Listener {
  try {
    return listen({ hostname: l.hostname, port: l.port, transport: "tcp" });
  } catch (e) {
    if (!l.all || e instanceof Deno.errors.AddrInUse) throw e;
    return listen({ hostname: "0.0.0.0", port: l.port, transport: "tcp" });
  }
}

/**
 * What a bound listener covers, for the log line that says where the agent
 * serves: `all IPv4 and IPv6 addresses` for `[::]`, `all IPv4 addresses` for
 * `0.0.0.0`, else `undefined` (one address).
 *
 * @example
 * ```ts
 * import { boundAddresses } from "./listen.ts";
 * boundAddresses({ hostname: "::", port: 10395 }); // => "all IPv4 and IPv6 addresses"
 * boundAddresses({ hostname: "127.0.0.1", port: 10395 }); // => undefined
 * ```
 */
export function boundAddresses(addr: { hostname: string; port: number }): string | undefined {
  if (addr.hostname === "::") return "all IPv4 and IPv6 addresses";
  if (addr.hostname === "0.0.0.0") return "all IPv4 addresses";
  return undefined;
}
