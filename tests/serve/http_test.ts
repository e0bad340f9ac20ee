import assert from "node:assert/strict";
import { parseHead, serveHttp } from "../../lib/serve/http.ts";

const ok = () => ({ status: 200, body: "ok\n" });
const enc = new TextEncoder();
const dec = new TextDecoder();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One request on a new connection; the whole answer, or "" when closed or timed out. */
async function ask(port: number, req: string, timeoutMs = 2000): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  let out = "";
  try {
    await conn.write(enc.encode(req));
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      out += dec.decode(buf.subarray(0, n));
    }
  } catch { /* closed at the timeout */ }
  clearTimeout(timer);
  try {
    conn.close();
  } catch { /* closed already */ }
  return out;
}

const PROBE = "GET /healthz HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n";

Deno.test("parseHead reads method, path and keep-alive, and refuses what it cannot read", () => {
  assert.deepEqual(parseHead("GET /healthz HTTP/1.0"), {
    ok: true,
    method: "GET",
    path: "/healthz",
    keepAlive: false,
    hasBody: false,
  });
  assert.deepEqual(parseHead("GET / HTTP/2.0\r\nHost: x"), {
    ok: false,
    status: 505,
    reason: "HTTP/1.x only",
  });
});

Deno.test("serveHttp: 200 hostile connections (idle, keep-alive, trickling) cannot keep a new probe from its 200", async () => {
  const server = serveHttp({ hostname: "127.0.0.1", port: 0, handler: ok });
  const port = server.addr.port;
  const hostile: Deno.Conn[] = [];
  let stop = false;
  const busy: Promise<void>[] = [];
  const quietly = (p: Promise<void>): Promise<void> => p.catch(() => {});
  try {
    for (let i = 0; i < 200; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      hostile.push(c);
      const kind = i % 3;
      if (kind === 1) {
        // Keep-alive: a request every 300 ms, answers read, never closed.
        busy.push(quietly((async () => {
          const buf = new Uint8Array(4096);
          while (!stop) {
            await c.write(enc.encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
            if (await c.read(buf) === null) return;
            await pause(300);
          }
        })()));
      } else if (kind === 2) {
        // Trickling a header, a byte every 100 ms.
        busy.push(quietly((async () => {
          await c.write(enc.encode("GET /healthz HTTP/1.1\r\nX-Slow: "));
          while (!stop) {
            await c.write(enc.encode("a"));
            await pause(100);
          }
        })()));
      } // kind 0: connected and silent.
    }
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) {
      await pause(i === 0 ? 200 : 1000);
      const t0 = performance.now();
      const res = await ask(port, PROBE, 2000);
      answers.push(`${res.split("\r\n")[0]} after ${Math.round(performance.now() - t0)} ms`);
    }
    assert.ok(
      answers.every((a) => a.startsWith("HTTP/1.1 200 OK after")),
      answers.join("; "),
    );
  } finally {
    stop = true;
    for (const c of hostile) {
      try {
        c.close();
      } catch { /* evicted and closed */ }
    }
    await Promise.all(busy);
    await server.shutdown();
  }
});

Deno.test("serveHttp: past the cap a new connection closes the longest idle one, not itself", async () => {
  const server = serveHttp({ hostname: "127.0.0.1", port: 0, handler: ok, maxConnections: 2 });
  const port = server.addr.port;
  const a = await Deno.connect({ hostname: "127.0.0.1", port });
  await pause(50);
  const b = await Deno.connect({ hostname: "127.0.0.1", port });
  await pause(50);
  try {
    assert.match(await ask(port, PROBE), /^HTTP\/1\.1 200 OK\r\n/);
    // `a` was the oldest: closed by the server, so it reads end of stream.
    assert.equal(await a.read(new Uint8Array(16)), null);
    await b.write(enc.encode(PROBE));
    const buf = new Uint8Array(4096);
    const n = await b.read(buf);
    assert.match(dec.decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 200 OK\r\n/, "b was kept");
  } finally {
    a.close();
    b.close();
    await server.shutdown();
  }
});

Deno.test("serveHttp answers a request whose lines end in a bare LF with 400 at once", async () => {
  const server = serveHttp({ hostname: "127.0.0.1", port: 0, handler: ok, idleTimeoutMs: 10_000 });
  try {
    for (const req of ["GET / HTTP/1.1\nHost: x\n\n", "GET / HTTP/1.1\r\nHost: x\n\r\n"]) {
      const t0 = performance.now();
      const res = await ask(server.addr.port, req, 5000);
      assert.match(res, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(req));
      assert.ok(performance.now() - t0 < 4000, "answered, not left to the idle timeout");
    }
    // Split CRLFs across reads are still fine.
    const c = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    for (const part of ["GET /x HTTP/1.1\r", "\nHost: x\r\nConnection: close\r", "\n\r", "\n"]) {
      await c.write(enc.encode(part));
      await pause(20);
    }
    const buf = new Uint8Array(4096);
    const n = await c.read(buf);
    c.close();
    assert.match(dec.decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 200 OK\r\n/);
  } finally {
    await server.shutdown();
  }
});

const HTTP_TS = new URL("../../lib/serve/http.ts", import.meta.url).href;

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

Deno.test("serveHttp backs off when accept fails with EMFILE instead of spinning, and still answers", async () => {
  // A server with few descriptors: the connections below exhaust them.
  const code = `import { serveHttp } from ${JSON.stringify(HTTP_TS)};
const s = serveHttp({ hostname: "127.0.0.1", port: 0, maxConnections: 10000,
  handler: () => ({ status: 200, body: "ok\\n" }) });
console.log(s.addr.port);`;
  const child = new Deno.Command("sh", {
    args: ["-c", 'ulimit -n 48 && exec "$0" eval "$1"', Deno.execPath(), code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const held: Deno.Conn[] = [];
  try {
    const reader = child.stdout.getReader();
    let line = "";
    while (!line.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("server did not start");
      line += dec.decode(value);
    }
    reader.releaseLock();
    const port = Number(line.trim());
    // Deno sets up its own SIGUSR1 handling 500 ms after start and panics if
    // that finds no descriptor: let it happen first.
    await pause(800);
    for (let i = 0; i < 60; i++) held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    await pause(500);
    const before = cpuSeconds(child.pid);
    await pause(1500);
    const used = cpuSeconds(child.pid) - before;
    assert.ok(
      used < 0.3,
      `the server used ${used.toFixed(2)} s of CPU in 1.5 s with no descriptors`,
    );
    assert.match(await ask(port, PROBE, 5000), /^HTTP\/1\.1 200 OK\r\n/, "a probe is still served");
  } finally {
    for (const c of held) c.close();
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
});
