/**
 * The small HTTP server: `/metrics`, `/healthz`, `/readyz`. It never reads the
 * table: it answers from the agent's status and the metrics registry.
 *
 * @module
 */
import { type ListenAddress, openListener } from "./listen.ts";
import { type HttpResponse, serveHttp } from "./http.ts";

/** What a probe answers. */
export interface ProbeAnswer {
  ok: boolean;
  /** One line: why not, or "ok". */
  reason: string;
}

/** How long the loop may take before it counts as stuck. */
export interface LivenessLimits {
  /** Between polls (and before the first): the interval plus some grace. */
  idleMs: number;
  /** One poll, start to end: every step of it has its own timeout, well below this. */
  pollMs: number;
}

/**
 * Liveness: between polls, the next one starts within `idleMs` of the last
 * one's end (or of the process start); a poll in progress finishes within
 * `pollMs`. A long but legitimate poll (many CLI deletes on a big table)
 * therefore does not fail the probe; a hung one does.
 *
 * @example
 * ```ts
 * import { liveness } from "./server.ts";
 * const status = { lastPollStartedAt: 1000, lastPollEndedAt: 1010, lastSnapshotOk: true, lastError: undefined, polling: false };
 * liveness(status, 2000, 0, { idleMs: 31_000, pollMs: 600_000 }).ok; // => true
 * ```
 */
export function liveness(
  status: ProbeStatus,
  now: number,
  startedAt: number,
  limits: LivenessLimits,
): ProbeAnswer {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  if (status.polling && status.lastPollStartedAt !== undefined) {
    const age = now - status.lastPollStartedAt;
    if (age <= limits.pollMs) return { ok: true, reason: "ok" };
    return {
      ok: false,
      reason: `a poll has been running for ${s(age)} (limit ${s(limits.pollMs)})`,
    };
  }
  const age = now - (status.lastPollEndedAt ?? startedAt);
  if (age <= limits.idleMs) return { ok: true, reason: "ok" };
  const what = status.lastPollEndedAt === undefined ? "no poll has started" : "no poll started";
  return { ok: false, reason: `${what} for ${s(age)} (limit ${s(limits.idleMs)})` };
}

/**
 * What the probes read of the poll loop (the agent's status has these
 * fields); the server depends on nothing else of the loop.
 */
export interface ProbeStatus {
  /** Monotonic ms when the last poll started; `undefined` before the first. */
  readonly lastPollStartedAt: number | undefined;
  /** Monotonic ms when the last poll ended; `undefined` before the first. */
  readonly lastPollEndedAt: number | undefined;
  /** Whether the last snapshot succeeded; `undefined` before the first finished. */
  readonly lastSnapshotOk: boolean | undefined;
  /** The last snapshot error, while the last snapshot failed. */
  readonly lastError: string | undefined;
  /** A poll is in progress. */
  readonly polling: boolean;
  /** Polls in a row whose deletions all failed (0 once one succeeds). */
  readonly deleteFailures?: number | undefined;
  /** Why the last failed deletion failed, while `deleteFailures` > 0. */
  readonly lastDeleteError?: string | undefined;
}

/** Polls in a row whose deletions all failed before /readyz answers 503. */
export const DELETE_FAILURES_NOT_READY = 3;

/**
 * Readiness: the first snapshot succeeded and so did the last one, and
 * deleting works (not {@linkcode DELETE_FAILURES_NOT_READY} polls in a row
 * whose deletions all failed; ready again once one succeeds).
 *
 * @example
 * ```ts
 * import { readiness } from "./server.ts";
 * readiness({
 *   lastPollStartedAt: undefined,
 *   lastPollEndedAt: undefined,
 *   lastSnapshotOk: undefined,
 *   lastError: undefined,
 *   polling: false,
 * });
 * // => { ok: false, reason: "no snapshot has finished yet" }
 * ```
 */
export function readiness(status: ProbeStatus): ProbeAnswer {
  if (status.lastSnapshotOk === undefined) {
    return { ok: false, reason: "no snapshot has finished yet" };
  }
  if (!status.lastSnapshotOk) {
    return {
      ok: false,
      reason: (status.lastError ?? "the last snapshot failed").replaceAll("\n", " "),
    };
  }
  const failures = status.deleteFailures ?? 0;
  if (failures >= DELETE_FAILURES_NOT_READY) {
    const why = (status.lastDeleteError ?? "unknown").replaceAll("\n", " ");
    return { ok: false, reason: `deleting has failed in ${failures} polls in a row: ${why}` };
  }
  return { ok: true, reason: "ok" };
}

/** Options for {@linkcode startServer}. */
export interface ServerOptions {
  listen: ListenAddress;
  status: ProbeStatus;
  /** The exposition text and its content type. */
  metrics: () => Promise<{ body: string; contentType: string }>;
  /** See {@linkcode liveness}. */
  liveness: LivenessLimits;
  /**
   * More readiness checks (the Kubernetes view's), asked after the poll
   * loop's own: /readyz answers 503 with the first that is not ok.
   */
  readyChecks?: (() => ProbeAnswer)[];
  /** Monotonic milliseconds; default `performance.now`. */
  clock?: () => number;
  onListen?: (addr: { hostname: string; port: number }) => void;
  onError?: (error: unknown) => void;
  /** `/metrics` serves a rendering at most this old; default 1000 ms (0: render every time). */
  metricsMaxAgeMs?: number;
  /** Idle or half-sent connections are closed after this long; default 30 s. */
  idleTimeoutMs?: number;
  /** Connections open at once; default 64. */
  maxConnections?: number;
}

/**
 * Wraps `render` so that calls within `maxAgeMs` of the last rendering get
 * that rendering, and calls while one is being made share it: a scrape storm
 * costs one rendering a second.
 *
 * @example
 * ```ts
 * import { cacheFor } from "./server.ts";
 * let n = 0;
 * const get = cacheFor(() => Promise.resolve(++n), 1000);
 * await get(); // => 1
 * await get(); // => 1 (rendered less than 1 s ago)
 * ```
 */
export function cacheFor<T>(
  render: () => Promise<T>,
  maxAgeMs: number,
  clock: () => number = () => performance.now(),
): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = clock();
    if (last !== undefined && now - last.at < maxAgeMs) return last.value;
    const value = render();
    const entry = { at: now, value };
    last = entry;
    // A failed rendering is not kept.
    value.catch(() => {
      if (last === entry) last = undefined;
    });
    return value;
  };
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
 * const status = {
 *   lastPollStartedAt: undefined,
 *   lastPollEndedAt: undefined,
 *   lastSnapshotOk: undefined,
 *   lastError: undefined,
 *   polling: false,
 * };
 * const server = startServer({
 *   listen: { hostname: "127.0.0.1", port: 0 },
 *   status,
 *   metrics: () => Promise.resolve({ body: "", contentType: "text/plain" }),
 *   liveness: { idleMs: 31_000, pollMs: 600_000 },
 * });
 * await fetch(`http://127.0.0.1:${server.addr.port}/readyz`); // 503: no snapshot yet
 * await server.shutdown();
 * ```
 */
export function startServer(o: ServerOptions): RunningServer {
  const clock = o.clock ?? (() => performance.now());
  const startedAt = clock();
  const text = (status: number, body: string, headers: Record<string, string> = {}) => ({
    status,
    body: body + "\n",
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
  const probe = (a: ProbeAnswer) => text(a.ok ? 200 : 503, a.reason);
  const metrics = cacheFor(o.metrics, o.metricsMaxAgeMs ?? 1000, clock);
  const server = serveHttp({
    hostname: o.listen.hostname,
    port: o.listen.port,
    listener: openListener(o.listen),
    idleTimeoutMs: o.idleTimeoutMs,
    maxConnections: o.maxConnections,
    onError: o.onError,
    handler: async (req): Promise<HttpResponse> => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return text(405, "method not allowed", { allow: "GET, HEAD" });
      }
      switch (req.path) {
        case "/healthz":
          return probe(liveness(o.status, clock(), startedAt, o.liveness));
        case "/readyz":
          return probe(
            [readiness(o.status), ...(o.readyChecks ?? []).map((c) => c())].find((a) => !a.ok) ??
              { ok: true, reason: "ok" },
          );
        case "/metrics": {
          const m = await metrics();
          return { status: 200, body: m.body, headers: { "content-type": m.contentType } };
        }
        case "/":
          return text(200, "conntrack-cleaner: /metrics /healthz /readyz");
        default:
          return text(404, "not found");
      }
    },
  });
  o.onListen?.(server.addr);
  return server;
}
