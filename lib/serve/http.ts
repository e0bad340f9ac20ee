/**
 * A small HTTP/1.1 server over `Deno.listen`, for three GET endpoints: it
 * reads request heads only (no bodies), answers anything malformed with 400
 * and closes, gives each connection a deadline to send a whole request head
 * (idle and half-sent connections are closed), and caps how many connections
 * are open at once, closing the longest-idle one to make room for a new one.
 * Nothing a client sends is logged.
 *
 * `Deno.serve` answers a bad `Host` with a 500 through its error handler and
 * has no idle timeout or connection cap: hence this.
 *
 * @module
 */

/** One parsed request: only what the endpoints need. */
export interface HttpRequest {
  method: string;
  /** The path, without the query. */
  path: string;
}

/** What a handler answers. */
export interface HttpResponse {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

/** Options for {@linkcode serveHttp}. */
export interface HttpOptions {
  hostname: string;
  port: number;
  handler: (req: HttpRequest) => HttpResponse | Promise<HttpResponse>;
  /**
   * A connection must deliver a whole request head (and take its answer)
   * within this long of opening or of its previous answer; default 30 s.
   */
  idleTimeoutMs?: number | undefined;
  /**
   * Connections open at once; a new one past this closes the connection that
   * has gone longest without completing a request. Default 64.
   */
  maxConnections?: number | undefined;
  /** Longest request head accepted (431 beyond); default 8 KiB. */
  maxHeadBytes?: number;
  /** Serve on this listener instead of binding `hostname:port` (lib/listen.ts's `openListener`, tests). */
  listener?: Deno.Listener | undefined;
  /** A handler threw (a bug, not the client's fault): answered 500. */
  onError?: ((error: unknown) => void) | undefined;
}

/** A running server. */
export interface HttpServer {
  addr: { hostname: string; port: number };
  shutdown(): Promise<void>;
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::([0-9]{0,5}))?$/;
/** Control characters other than tab: never allowed in a header line. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Parses a request head (the bytes before the blank line) or says why it is
 * malformed. Pure.
 *
 * @example
 * ```ts
 * import { parseHead } from "./http.ts";
 * parseHead("GET /metrics?x=1 HTTP/1.1\r\nHost: node:10395");
 * // => { ok: true, method: "GET", path: "/metrics", keepAlive: true, hasBody: false }
 * parseHead("GET / HTTP/1.1\r\nHost: a b").ok; // => false
 * ```
 */
export function parseHead(
  head: string,
):
  | { ok: true; method: string; path: string; keepAlive: boolean; hasBody: boolean }
  | { ok: false; status: number; reason: string } {
  const lines = head.split("\r\n");
  const m = /^([^ ]+) ([^ ]+) HTTP\/(\d)\.(\d)$/.exec(lines[0]!);
  if (!m || !TOKEN.test(m[1]!)) return { ok: false, status: 400, reason: "bad request line" };
  if (m[3] !== "1") return { ok: false, status: 505, reason: "HTTP/1.x only" };
  const http11 = m[4] !== "0";
  let target = m[2]!;
  const abs = /^https?:\/\/[^/?#]*(.*)$/i.exec(target);
  if (abs) target = abs[1] === "" ? "/" : abs[1]!;
  if (!target.startsWith("/") || /[^\x21-\x7e]/.test(target)) {
    return { ok: false, status: 400, reason: "bad request target" };
  }
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    const name = line.slice(0, i);
    if (i <= 0 || !TOKEN.test(name) || CONTROL.test(line)) {
      return { ok: false, status: 400, reason: "bad header line" };
    }
    const key = name.toLowerCase();
    headers.set(key, [...(headers.get(key) ?? []), line.slice(i + 1).trim()]);
  }
  const host = headers.get("host");
  if (http11 && host?.length !== 1) return { ok: false, status: 400, reason: "one Host needed" };
  if (host !== undefined) {
    const h = HOST.exec(host[0] ?? "");
    if (!h || host.length !== 1 || (h[1] !== undefined && h[1] !== "" && Number(h[1]) > 65535)) {
      return { ok: false, status: 400, reason: "bad Host" };
    }
  }
  const length = headers.get("content-length");
  if (length && (length.length !== 1 || !/^[0-9]{1,15}$/.test(length[0]!))) {
    return { ok: false, status: 400, reason: "bad Content-Length" };
  }
  const hasBody = headers.has("transfer-encoding") || (length !== undefined && length[0] !== "0");
  const connection = (headers.get("connection") ?? []).join(",").toLowerCase();
  const keepAlive = http11 ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  const q = target.search(/[?#]/);
  return { ok: true, method: m[1]!, path: q < 0 ? target : target.slice(0, q), keepAlive, hasBody };
}

/**
 * Listens and serves until `shutdown()`. Throws at once when the address
 * cannot be bound.
 *
 * Nobody who can reach the port can starve it: when `maxConnections` are
 * open, a new connection closes the one that has gone longest without
 * completing a request (accepted or last answered longest ago: idle,
 * keep-alive and trickling connections alike), so a short request on a new
 * connection is always served. A request head must arrive whole within
 * `idleTimeoutMs` of the connection's opening or its previous answer; bytes
 * trickling in do not extend it. When accept(2) fails (out of descriptors),
 * the longest-idle connection is closed and accepting backs off (10 ms,
 * doubling to 1 s) instead of spinning.
 *
 * @example
 * ```ts
 * import { serveHttp } from "./http.ts";
 * const server = serveHttp({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   handler: () => ({ status: 200, body: "ok\n" }),
 * });
 * await (await fetch(`http://127.0.0.1:${server.addr.port}/`)).text(); // => "ok\n"
 * await server.shutdown();
 * ```
 */
export function serveHttp(o: HttpOptions): HttpServer {
  const idleMs = o.idleTimeoutMs ?? 30_000;
  const max = Math.max(1, o.maxConnections ?? 64);
  const maxHead = o.maxHeadBytes ?? 8192;
  const listener = o.listener ??
    Deno.listen({ hostname: o.hostname, port: o.port, transport: "tcp" });
  // Insertion order is "last progress" order: the first is the one to evict.
  const open = new Map<Deno.Conn, true>();
  const done = new Set<Promise<void>>();
  let closing = false;

  const progressed = (conn: Deno.Conn) => {
    if (!open.delete(conn)) return false;
    open.set(conn, true);
    return true;
  };
  const evictOldest = () => {
    const oldest = open.keys().next();
    if (!oldest.done) close(oldest.value);
  };

  const serve = async (conn: Deno.Conn) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => close(conn), idleMs);
    };
    try {
      let buf: Uint8Array = new Uint8Array(0);
      const chunk = new Uint8Array(4096);
      for (;;) {
        arm();
        let end: number;
        let scanned = 0;
        while ((end = headEnd(buf, scanned)) < 0) {
          if (end === BARE_LF) return await answer(conn, 400, "bare LF in request head\n", false);
          if (buf.length > maxHead) {
            return await answer(conn, 431, "request head too large\n", false);
          }
          const n = await conn.read(chunk);
          if (n === null) return;
          scanned = buf.length;
          buf = concat(buf, chunk.subarray(0, n));
        }
        if (end > maxHead) return await answer(conn, 431, "request head too large\n", false);
        const head = parseHead(decoder.decode(buf.subarray(0, end)));
        buf = buf.subarray(end + 4);
        if (!head.ok) return await answer(conn, head.status, `${head.reason}\n`, false);
        // Bodies are not read: answer, then close rather than parse what follows.
        const keep = head.keepAlive && !head.hasBody && !closing;
        let res: HttpResponse;
        try {
          res = await o.handler({ method: head.method, path: head.path });
        } catch (e) {
          o.onError?.(e);
          res = { status: 500, body: "internal error\n" };
        }
        await answer(conn, res.status, res.body, keep, head.method, res.headers);
        if (!keep || !progressed(conn)) return;
      }
    } catch {
      // Reset, closed at the deadline, evicted, or at shutdown: nothing to say.
    } finally {
      clearTimeout(timer);
      close(conn);
    }
  };

  const close = (conn: Deno.Conn) => {
    if (!open.delete(conn)) return;
    try {
      conn.close();
    } catch { /* already closed */ }
  };

  const track = (p: Promise<void>) => {
    done.add(p);
    void p.then(() => done.delete(p));
  };

  const accepting = (async () => {
    let backoffMs = 0;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        backoffMs = 0;
      } catch {
        if (closing) return;
        // EMFILE and the like: free a descriptor, and do not spin on a
        // listener that stays readable.
        evictOldest();
        backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, backoffMs * 2));
        await new Promise((r) => setTimeout(r, backoffMs));
        continue;
      }
      if (closing) {
        conn.close();
        continue;
      }
      while (open.size >= max) evictOldest();
      open.set(conn, true);
      track(serve(conn));
    }
  })();

  const addr = listener.addr as Deno.NetAddr;
  return {
    addr: { hostname: addr.hostname, port: addr.port },
    async shutdown() {
      closing = true;
      listener.close();
      for (const c of [...open.keys()]) close(c);
      await accepting;
      await Promise.all(done);
    },
  };
}

const MIN_BACKOFF_MS = 10;
const MAX_BACKOFF_MS = 1000;
/** {@linkcode headEnd}'s answer for a head with a line ending in a bare LF. */
const BARE_LF = -2;

/**
 * Index of the blank line ending the head, -1 while incomplete, or
 * {@linkcode BARE_LF} when a line ends in LF without CR (answered 400 at
 * once rather than waited on: such a head never ends in CRLF CRLF). Bytes
 * before `from` were looked at already.
 */
function headEnd(b: Uint8Array, from = 0): number {
  for (let i = from; i < b.length; i++) {
    if (b[i] !== 10) continue;
    if (i === 0 || b[i - 1] !== 13) return BARE_LF;
    if (i >= 3 && b[i - 2] === 10 && b[i - 3] === 13) return i - 3;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

async function answer(
  conn: Deno.Conn,
  status: number,
  body: string,
  keepAlive: boolean,
  method = "GET",
  headers: Record<string, string> = {},
): Promise<void> {
  const bytes = encoder.encode(body);
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`];
  const all = { "content-type": "text/plain; charset=utf-8", ...headers };
  for (const [k, v] of Object.entries(all)) lines.push(`${k}: ${v}`);
  lines.push(`content-length: ${bytes.length}`);
  lines.push(keepAlive ? "connection: keep-alive" : "connection: close");
  const head = encoder.encode(lines.join("\r\n") + "\r\n\r\n");
  const out = method === "HEAD" ? head : concat(head, bytes);
  let off = 0;
  while (off < out.length) off += await conn.write(out.subarray(off));
}
