/**
 * Real background traffic for the end-to-end tests, run inside the test's
 * namespace: a TCP server on loopback (IPv4 and IPv6) and a client that opens,
 * uses and closes a connection every 20 ms, so the kernel itself creates
 * ESTABLISHED, FIN_WAIT, TIME_WAIT … entries while the agent runs. Stops by
 * itself after `seconds` (argument, default 30) or on SIGTERM, and prints
 * `{"ok": N, "failed": M}`.
 *
 * @module
 */
const seconds = Number(Deno.args[0] ?? 30);
const stop = AbortSignal.any([AbortSignal.timeout(seconds * 1000), signalled("SIGTERM")]);
const servers = ["127.0.0.1", "::1"].map((hostname) =>
  Deno.serve({ hostname, port: 8080, signal: stop, onListen: () => {} }, () => new Response("ok"))
);
let ok = 0, failed = 0;
while (!stop.aborted) {
  for (const host of ["127.0.0.1", "[::1]"]) {
    try {
      const r = await fetch(`http://${host}:8080/`, { headers: { connection: "close" } });
      if ((await r.text()) === "ok") ok++;
      else failed++;
    } catch {
      if (!stop.aborted) failed++;
    }
  }
  await new Promise((r) => setTimeout(r, 20));
}
await Promise.all(servers.map((s) => s.finished));
console.log(JSON.stringify({ ok, failed }));
Deno.exit(0); // the signal listener and the timeout would keep the process alive

function signalled(sig: Deno.Signal): AbortSignal {
  const c = new AbortController();
  Deno.addSignalListener(sig, () => c.abort());
  return c.signal;
}
