/**
 * The small HTTP server: `/metrics`, `/healthz`, `/readyz`. It never reads the
 * table: it answers from the agent's status and the metrics registry.
 *
 * @module
 */
import type { AgentStatus } from "./agent.ts";
import type { ListenAddress } from "./config.ts";

/** What a probe answers. */
export interface ProbeAnswer {
  ok: boolean;
  /** One line: why not, or "ok". */
  reason: string;
}

/**
 * Liveness: the loop started a poll within `windowMs` (or, before the first
 * poll, the process started within it).
 *
 * @example
 * ```ts
 * import { liveness } from "./server.ts";
 * const status = { lastPollStartedAt: 1000, lastSnapshotOk: true, lastError: undefined, polling: false };
 * liveness(status, 1500, 0, 3000).ok; // => true
 * ```
 */
export function liveness(
  status: AgentStatus,
  now: number,
  startedAt: number,
  windowMs: number,
): ProbeAnswer {
  const last = status.lastPollStartedAt ?? startedAt;
  const age = now - last;
  if (age <= windowMs) return { ok: true, reason: "ok" };
  const what = status.lastPollStartedAt === undefined ? "no poll has started" : "no poll started";
  return {
    ok: false,
    reason: `${what} for ${(age / 1000).toFixed(1)}s (limit ${(windowMs / 1000).toFixed(1)}s)`,
  };
}

/**
 * Readiness: the first snapshot succeeded and so did the last one.
 *
 * @example
 * ```ts
 * import { readiness } from "./server.ts";
 * readiness({ lastPollStartedAt: undefined, lastSnapshotOk: undefined, lastError: undefined, polling: false });
 * // => { ok: false, reason: "no snapshot has finished yet" }
 * ```
 */
export function readiness(status: AgentStatus): ProbeAnswer {
  if (status.lastSnapshotOk === undefined) {
    return { ok: false, reason: "no snapshot has finished yet" };
  }
  if (!status.lastSnapshotOk) {
    return {
      ok: false,
      reason: (status.lastError ?? "the last snapshot failed").replaceAll("\n", " "),
    };
  }
  return { ok: true, reason: "ok" };
}

/** Options for {@linkcode startServer}. */
export interface ServerOptions {
  listen: ListenAddress;
  status: AgentStatus;
  /** The exposition text and its content type. */
  metrics: () => Promise<{ body: string; contentType: string }>;
  /** Liveness window in milliseconds. */
  livenessWindowMs: number;
  /** Monotonic milliseconds; default `performance.now`. */
  clock?: () => number;
  onListen?: (addr: { hostname: string; port: number }) => void;
  onError?: (error: unknown) => void;
}

/** A running server. */
export interface RunningServer {
  /** The address really bound (the port, when 0 was asked). */
  addr: { hostname: string; port: number };
  shutdown(): Promise<void>;
}

/**
 * Serves the three endpoints with `Deno.serve`.
 *
 * @example
 * ```ts
 * import { startServer } from "./server.ts";
 * const status = { lastPollStartedAt: undefined, lastSnapshotOk: undefined, lastError: undefined, polling: false };
 * const server = startServer({
 *   listen: { hostname: "127.0.0.1", port: 0 },
 *   status,
 *   metrics: () => Promise.resolve({ body: "", contentType: "text/plain" }),
 *   livenessWindowMs: 5000,
 * });
 * await fetch(`http://127.0.0.1:${server.addr.port}/readyz`); // 503: no snapshot yet
 * await server.shutdown();
 * ```
 */
export function startServer(o: ServerOptions): RunningServer {
  const clock = o.clock ?? (() => performance.now());
  const startedAt = clock();
  const text = (status: number, body: string) =>
    new Response(body + "\n", { status, headers: { "content-type": "text/plain; charset=utf-8" } });
  const probe = (a: ProbeAnswer) => text(a.ok ? 200 : 503, a.reason);
  const server = Deno.serve({
    hostname: o.listen.hostname,
    port: o.listen.port,
    onListen: () => {},
    onError: (e) => {
      o.onError?.(e);
      return text(500, "internal error");
    },
  }, async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") return text(405, "method not allowed");
    switch (new URL(req.url).pathname) {
      case "/healthz":
        return probe(liveness(o.status, clock(), startedAt, o.livenessWindowMs));
      case "/readyz":
        return probe(readiness(o.status));
      case "/metrics": {
        const m = await o.metrics();
        return new Response(m.body, { headers: { "content-type": m.contentType } });
      }
      case "/":
        return text(200, "conntrack-cleaner: /metrics /healthz /readyz");
      default:
        return text(404, "not found");
    }
  });
  const addr = server.addr as Deno.NetAddr;
  o.onListen?.({ hostname: addr.hostname, port: addr.port });
  return { addr: { hostname: addr.hostname, port: addr.port }, shutdown: () => server.shutdown() };
}
