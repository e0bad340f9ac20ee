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
  return l.hostname.includes(":") ? `[${l.hostname}]:${l.port}` : `${l.hostname}:${l.port}`;
}

/**
 * `0.0.0.0:10395`, `[::1]:9999`, `[10.0.0.7]:10395`, `localhost:8080` →
 * address (port 0 picks a free one); `undefined` for anything else.
 *
 * @example
 * ```ts
 * import { parseListen } from "./listen.ts";
 * parseListen("[10.0.0.7]:10395"); // => { hostname: "10.0.0.7", port: 10395 }
 * parseListen("0.0.0.0:70000"); // => undefined
 * ```
 */
export function parseListen(s: string): ListenAddress | undefined {
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
