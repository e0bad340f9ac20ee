/**
 * One real TCP client, run as a child process inside a test namespace by
 * `stuck_client.ts`: waits until a wall-clock time, calls `connect()` once
 * (from a fixed local port if asked, as NFS clients and some load balancers
 * do) and reports on stdout, one JSON object per line:
 *
 * - `{"event":"connect","at":EPOCH_MS,"localPort":N}` just before `connect()`
 *   (the first SYN leaves at once);
 * - then one of `{"event":"connected","at":…,"ms":…,"localPort":N}`,
 *   `{"event":"error","at":…,"ms":…,"code":"ETIMEDOUT"}` or
 *   `{"event":"deadline","at":…,"ms":…}` (gave up: the socket is closed).
 *
 * `ms` counts from the connect event. The kernel does the retrying: the
 * socket is never closed and reopened before the deadline, so every
 * retransmitted SYN carries the same 4-tuple.
 *
 * Usage: `deno run -A tcp_connect.ts '{"host":…,"port":…,"localAddress":…,
 * "localPort":…,"at":…,"deadlineMs":…}'`.
 *
 * Uses `node:net` because `Deno.connect` cannot bind a local port.
 *
 * @module
 */
import net from "node:net";

/** What the child is asked to do (its only argument, as JSON). */
export interface ConnectRequest {
  /** Address to connect to. */
  host: string;
  port: number;
  /** Local address to bind (the client's own address). */
  localAddress: string;
  /** Fixed source port; omitted: an ephemeral one. */
  localPort?: number;
  /** Wall-clock time (epoch ms) to call `connect()` at; already past: at once. */
  at: number;
  /** Give up (close the socket) this long after `connect()`. */
  deadlineMs: number;
}

function report(o: Record<string, unknown>): void {
  console.log(JSON.stringify(o));
}

async function main(req: ConnectRequest): Promise<void> {
  const wait = req.at - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const t0 = Date.now();
  report({ event: "connect", at: t0, localPort: req.localPort ?? 0 });
  const outcome = await new Promise<Record<string, unknown>>((resolve) => {
    const socket = net.connect({
      host: req.host,
      port: req.port,
      localAddress: req.localAddress,
      ...(req.localPort !== undefined ? { localPort: req.localPort } : {}),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ event: "deadline" });
    }, req.deadlineMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      const localPort = socket.localPort;
      socket.destroy();
      resolve({ event: "connected", localPort });
    });
    socket.once("error", (e: Error & { code?: string }) => {
      clearTimeout(timer);
      resolve({ event: "error", code: e.code ?? String(e) });
    });
  });
  const at = Date.now();
  report({ ...outcome, at, ms: at - t0 });
}

if (import.meta.main) {
  await main(JSON.parse(Deno.args[0]!) as ConnectRequest);
  Deno.exit(0);
}
