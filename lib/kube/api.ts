/**
 * The two calls the agent makes of the Kubernetes API, over `fetch`: a list
 * (one page, with its resourceVersion and continue token) and a watch (a
 * stream of JSON lines, one event each). A list page is taken apart as it
 * arrives, its items parsed and handed on one at a time (`list_items.ts`). TLS, trust and proxies as
 * `transport.ts` sets them (only the configured CA, proxies ignored); no
 * redirect is followed; a list page and an error body are read up to a byte
 * limit, never whole past it. The bearer token file is read again before
 * each request, since projected tokens rotate. Knows nothing of Services: see
 * `reflector.ts`.
 *
 * @module
 */
import { errorText } from "../basics.ts";
import type { ClusterAccess } from "./access.ts";
import { type EnvLike, KubeTransport, readCapped } from "./transport.ts";
import { ListSplitter } from "./list_items.ts";

/** One page of a list (its items went to the `onItem` given to `list`). */
export interface ListPage {
  resourceVersion: string;
  /** Set when more pages follow. */
  continue?: string;
  /** Items on this page. */
  count: number;
  /** Bytes of the answer. */
  bytes: number;
}

/** One watch event, as the API sends it. */
export type WatchEvent =
  | { type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK"; object: unknown }
  | { type: "ERROR"; code: number; reason: string; message: string };

/** An answer other than 200, or an ERROR event: the HTTP or Status code and reason. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(readonly code: number, readonly reason: string, message: string) {
    super(message);
  }
  /** 410 Gone: the resourceVersion is too old; only a fresh list helps. */
  get gone(): boolean {
    return this.code === 410 || this.reason === "Expired" || this.reason === "Gone";
  }
}

/** What the reflector needs of the API. */
export interface KubeApi {
  /**
   * One page of `path` (e.g. `/api/v1/services`): each item goes to `onItem`
   * as soon as it arrived, parsed (never the whole page at once).
   */
  list(
    path: string,
    o: { limit: number; continue?: string },
    signal: AbortSignal,
    onItem: (o: unknown) => void,
  ): Promise<ListPage>;
  /**
   * Opens a watch of `path` after `resourceVersion`: resolves once the server
   * answered 200, to the events, which end when the server ends the stream,
   * no byte came for `idleMs`, or `signal` aborts (that ending throws).
   */
  watch(
    path: string,
    o: { resourceVersion: string; timeoutSeconds: number; idleMs: number },
    signal: AbortSignal,
  ): Promise<AsyncIterable<WatchEvent>>;
  close?(): void;
}

/** A watch line longer than this ends the stream (an object this size is no Service). */
export const MAX_LINE_BYTES = 4 << 20;
/** A list page or the head of a watch takes at most this long. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** A list page larger than this is refused (`TooLarge`: the reflector asks for smaller pages). */
export const MAX_PAGE_BYTES = 16 << 20;
/** Of an error answer, this much is read at most. */
export const MAX_ERROR_BYTES = 64 << 10;

/**
 * {@linkcode KubeApi} over `fetch`.
 *
 * @example
 * ```ts ignore
 * // ignore: needs an API server.
 * import { FetchKubeApi } from "./api.ts";
 * const api = new FetchKubeApi({ server: "https://127.0.0.1:6443", token: "t", origin: "test" });
 * const page = await api.list("/api/v1/services", { limit: 500 }, AbortSignal.timeout(30_000), (o) => console.log(o));
 * ```
 */
export class FetchKubeApi implements KubeApi {
  #access: ClusterAccess;
  readonly transport: KubeTransport;
  #readTextFile: (p: string) => Promise<string>;
  #userAgent: string;
  #maxPageBytes: number;

  constructor(
    access: ClusterAccess,
    o: {
      readTextFile?: (p: string) => Promise<string>;
      userAgent?: string;
      maxPageBytes?: number;
      env?: EnvLike;
    } = {},
  ) {
    this.#access = access;
    this.#readTextFile = o.readTextFile ?? Deno.readTextFile;
    this.#userAgent = o.userAgent ?? "conntrack-cleaner";
    this.#maxPageBytes = o.maxPageBytes ?? MAX_PAGE_BYTES;
    this.transport = new KubeTransport(access, {
      readTextFile: this.#readTextFile,
      ...(o.env ? { env: o.env } : {}),
    });
  }

  async list(
    path: string,
    o: { limit: number; continue?: string },
    signal: AbortSignal,
    onItem: (o: unknown) => void = () => {},
  ): Promise<ListPage> {
    const q = new URLSearchParams({ limit: String(o.limit) });
    if (o.continue) q.set("continue", o.continue);
    const res = await this.#get(`${path}?${q}`, AbortSignal.any([signal, timeout()]));
    // Taken apart as it arrives: one item's bytes and one parsed item at a time (list_items.ts).
    const split = new ListSplitter(onItem);
    const bad = (e: unknown) =>
      new ApiError(res.status, "BadList", `${path}: the answer is not a list: ${errorText(e)}`);
    let bytes = 0;
    let meta: Record<string, unknown>;
    const reader = res.body?.getReader();
    if (reader === undefined) throw bad("no body");
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.length;
        if (bytes > this.#maxPageBytes) {
          await reader.cancel().catch(() => {});
          throw new ApiError(
            0,
            "TooLarge",
            `${path}: a list page over ${this.#maxPageBytes} bytes`,
          );
        }
        try {
          split.push(value);
        } catch (e) {
          if (e instanceof SyntaxError) throw bad(e);
          throw e;
        }
      }
      try {
        meta = (split.end() ?? {}) as Record<string, unknown>;
      } catch (e) {
        throw bad(e);
      }
    } catch (e) {
      await reader.cancel().catch(() => {});
      throw e;
    } finally {
      reader.releaseLock();
    }
    if (typeof meta.resourceVersion !== "string") {
      throw new ApiError(res.status, "BadList", `${path}: the answer is not a list`);
    }
    return {
      resourceVersion: meta.resourceVersion,
      count: split.count,
      bytes,
      ...(typeof meta.continue === "string" && meta.continue !== ""
        ? { continue: meta.continue }
        : {}),
    };
  }

  async watch(
    path: string,
    o: { resourceVersion: string; timeoutSeconds: number; idleMs: number },
    signal: AbortSignal,
  ): Promise<AsyncIterable<WatchEvent>> {
    const q = new URLSearchParams({
      watch: "1",
      allowWatchBookmarks: "true",
      resourceVersion: o.resourceVersion,
      timeoutSeconds: String(o.timeoutSeconds),
    });
    // The head must come within the request timeout, then a byte at least every idleMs.
    signal.throwIfAborted();
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    let timer = setTimeout(() => stop.abort(new Error("no answer")), REQUEST_TIMEOUT_MS);
    const rearm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => stop.abort(new Error(`watch idle for ${o.idleMs} ms`)), o.idleMs);
    };
    const end = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      stop.abort();
    };
    let res: Response;
    try {
      res = await this.#get(`${path}?${q}`, stop.signal);
    } catch (e) {
      end();
      throw e;
    }
    rearm();
    const body = res.body;
    return (async function* () {
      try {
        if (body === null) return;
        for await (const line of lines(body, rearm, stop.signal)) yield parseEvent(line);
      } finally {
        end();
      }
    })();
  }

  close(): void {
    this.transport.close();
  }

  async #get(pathAndQuery: string, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": this.#userAgent,
    };
    let token = this.#access.token;
    if (this.#access.tokenFile !== undefined) {
      token = (await this.#readTextFile(this.#access.tokenFile)).trim();
    }
    if (token) headers.authorization = `Bearer ${token}`;
    const init: RequestInit & { client?: Deno.HttpClient } = {
      headers,
      signal,
      redirect: "error",
      client: await this.transport.client(),
    };
    const res = await fetch(`${this.#access.server}${pathAndQuery}`, init);
    if (res.status !== 200) {
      const bytes = await readCapped(res.body, MAX_ERROR_BYTES).catch(() => undefined);
      const text = bytes === undefined
        ? `(an answer over ${MAX_ERROR_BYTES} bytes, not read)`
        : new TextDecoder().decode(bytes);
      let reason = res.statusText;
      let message = text.slice(0, 300);
      try {
        const s = JSON.parse(text) as Record<string, unknown>;
        if (typeof s.reason === "string") reason = s.reason;
        if (typeof s.message === "string") message = s.message;
      } catch { /* not a Status: keep the text */ }
      throw new ApiError(res.status, reason, `HTTP ${res.status} ${reason}: ${message}`);
    }
    return res;
  }
}

function timeout(): AbortSignal {
  return AbortSignal.timeout(REQUEST_TIMEOUT_MS);
}

/**
 * One watch line → event. A malformed line throws: the stream cannot be
 * trusted past it, and the reflector starts again.
 *
 * @example
 * ```ts
 * import { parseEvent } from "./api.ts";
 * parseEvent('{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}');
 * // => { type: "ERROR", code: 410, reason: "Expired", message: "too old" }
 * ```
 */
export function parseEvent(line: string): WatchEvent {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(line);
  } catch (err) {
    throw new ApiError(0, "BadEvent", `watch: a line is not JSON: ${errorText(err)}`);
  }
  const type = e?.type;
  if (type === "ERROR") {
    const s = (e.object ?? {}) as Record<string, unknown>;
    return {
      type,
      code: typeof s.code === "number" ? s.code : 0,
      reason: typeof s.reason === "string" ? s.reason : "",
      message: typeof s.message === "string" ? s.message : "",
    };
  }
  if (
    (type === "ADDED" || type === "MODIFIED" || type === "DELETED" || type === "BOOKMARK") &&
    typeof e.object === "object" && e.object !== null
  ) return { type, object: e.object };
  throw new ApiError(0, "BadEvent", `watch: unknown event type ${JSON.stringify(type)}`);
}

/**
 * The non-empty lines of a byte stream; a line over {@linkcode MAX_LINE_BYTES}
 * throws, and so does `signal` aborting (with its reason), even while a read
 * is pending.
 */
export async function* lines(
  body: ReadableStream<Uint8Array>,
  onBytes: () => void = () => {},
  signal?: AbortSignal,
): AsyncIterable<string> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  const onAbort = () => reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  let buf = "";
  try {
    while (true) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      signal?.throwIfAborted();
      if (done) break;
      onBytes();
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line !== "") yield line;
      }
      if (buf.length > MAX_LINE_BYTES) {
        throw new ApiError(0, "LineTooLong", `watch: a line over ${MAX_LINE_BYTES} bytes`);
      }
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
  const last = (buf + decoder.decode()).trim();
  if (last !== "") yield last;
}
