/**
 * Real TCP clients that talk to a server, run as one child process inside a
 * test namespace by `slow_net.ts`. Each session waits until its wall-clock
 * time, calls `connect()` (from a fixed local port if given), sends
 * `ping\n`, waits for the server's `pong\n`, keeps the socket open for
 * `holdMs` and closes it. A connection that is reset after it connected
 * (the harm a wrong deletion does) is an error, not a success.
 *
 * With `retries`, a session not connected within `attemptMs` closes its
 * socket and tries again from `localPort + attempt` (a new 4-tuple), waiting
 * `attemptMs · 2^attempt` for that one: an application's connect timeout with
 * exponential backoff. Once connected, it waits for the answer until the
 * deadline.
 *
 * Usage: `deno run -A tcp_session.ts '[{"id":…,"host":…,"port":…,…}, …]'`.
 * Once started it prints `{"event":"ready"}` and waits for one line on stdin:
 * the start time T (epoch ms) that every `atMs` counts from (so a slow start
 * of this process under load cannot bunch the sessions together).
 * Reports on stdout, one JSON object per line:
 * `{"id":…,"event":"connect","at":EPOCH_MS,"attempt":N,"localPort":N}` at each
 * `connect()`, then once per session one of
 * `{"id":…,"event":"answered","ms":…,"connectedMs":…,"localPort":N,"attempt":N}`
 * (ms: first SYN of the first attempt → pong), `{"id":…,"event":"error","code":…}`
 * or `{"id":…,"event":"deadline"}`. Uses `node:net` (`Deno.connect` cannot
 * bind a local port).
 *
 * @module
 */
import net from "node:net";

/** One session (see the module doc). */
export interface SessionRequest {
  id: string;
  host: string;
  port: number;
  /** Local address to bind; omitted: the kernel picks. */
  localAddress?: string;
  /** Fixed source port of the first attempt; omitted: ephemeral. */
  localPort?: number;
  /** The first `connect()`, in ms after the start time given on stdin. */
  atMs: number;
  /** Give up this long after the first `connect()`. */
  deadlineMs: number;
  /** Keep the connection open this long after the answer (default 0). */
  holdMs?: number;
  /** Attempts after the first (default 0: the kernel alone retries). */
  retries?: number;
  /** With `retries`: the first attempt's connect timeout, doubled at each attempt. */
  attemptMs?: number;
}

type Outcome =
  | { event: "answered"; connectedMs: number; localPort: number }
  | { event: "error"; code: string }
  | { event: "timeout" }
  | { event: "deadline" };

function report(o: Record<string, unknown>): void {
  console.log(JSON.stringify(o));
}

function attempt(
  req: SessionRequest,
  n: number,
  connectLimitMs: number,
  t0: number,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const localPort = req.localPort === undefined ? undefined : req.localPort + n;
    report({ id: req.id, event: "connect", at: Date.now(), attempt: n, localPort: localPort ?? 0 });
    const socket = net.connect({
      host: req.host,
      port: req.port,
      ...(req.localAddress !== undefined ? { localAddress: req.localAddress } : {}),
      ...(localPort !== undefined ? { localPort } : {}),
    });
    let connectedMs = -1, got = "", settled = false;
    const finish = (o: Outcome, closeAfterMs = 0) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      setTimeout(() => socket.destroy(), closeAfterMs);
      resolve(o);
    };
    let timer = setTimeout(() => finish({ event: "timeout" }), connectLimitMs);
    socket.once("connect", () => {
      connectedMs = Date.now() - t0;
      clearTimeout(timer);
      const left = Math.max(0, req.deadlineMs - connectedMs);
      timer = setTimeout(() => finish({ event: "deadline" }), left);
      socket.write("ping\n");
    });
    socket.on("data", (d: Uint8Array) => {
      got += new TextDecoder().decode(d);
      if (got.includes("pong\n")) {
        const port = socket.localPort ?? 0;
        // Closed by us after holdMs; a reset meanwhile still counts as answered.
        socket.removeAllListeners("error");
        socket.on("error", () => {});
        finish({ event: "answered", connectedMs, localPort: port }, req.holdMs ?? 0);
      }
    });
    socket.on("error", (e: Error & { code?: string }) => {
      finish({ event: "error", code: e.code ?? String(e) });
    });
    socket.on("close", () => finish({ event: "error", code: "closed without an answer" }));
  });
}

async function session(req: SessionRequest, start: number): Promise<void> {
  const wait = start + req.atMs - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const t0 = Date.now();
  const retries = req.retries ?? 0;
  for (let n = 0;; n++) {
    const left = req.deadlineMs - (Date.now() - t0);
    const limit = n < retries ? Math.min(left, (req.attemptMs ?? 1000) * 2 ** n) : left;
    if (limit <= 0) {
      report({ id: req.id, event: "deadline", ms: Date.now() - t0 });
      return;
    }
    const o = await attempt(req, n, limit, t0);
    const ms = Date.now() - t0;
    if (o.event === "answered") {
      report({ id: req.id, ...o, ms, attempt: n });
      await new Promise((r) => setTimeout(r, req.holdMs ?? 0));
      return;
    }
    if (o.event === "error") {
      report({ id: req.id, ...o, ms, attempt: n });
      return;
    }
    if (o.event === "deadline" || n >= retries) {
      report({ id: req.id, event: "deadline", ms, attempt: n });
      return;
    }
  }
}

if (import.meta.main) {
  const sessions = JSON.parse(Deno.args[0]!) as SessionRequest[];
  report({ event: "ready" });
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    line += value;
  }
  const start = Number(line.trim());
  if (!Number.isFinite(start)) throw new Error(`bad start time ${JSON.stringify(line)}`);
  await Promise.all(sessions.map((s) => session(s, start)));
  Deno.exit(0);
}
