import assert from "node:assert/strict";
import { type Tuple, tupleKey } from "../../lib/tuple.ts";
import { ProcfsSource } from "../../lib/sources/procfs.ts";
import { serveHttp } from "../../lib/http.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url);
const expected: {
  entries: {
    candidate: boolean;
    family: "ipv4" | "ipv6";
    tcp?: { original: Omit<Tuple, "family" | "zone">; zone: number };
  }[];
} = JSON.parse(await Deno.readTextFile(new URL("procfs_expected.json", FIXTURES)));
const wanted = expected.entries.filter((e) => e.candidate).map((e) =>
  tupleKey({ family: e.family, ...e.tcp!.original, zone: e.tcp!.zone })
).sort();

Deno.test("ProcfsSource.snapshot reads a captured table in small chunks and finds exactly its candidates", async () => {
  for (const file of ["procfs_plain.txt", "procfs_acct_timestamp.txt"]) {
    for (const chunkSize of [1, 7, 100, 4096, 1 << 20]) {
      let now = 0;
      const source = new ProcfsSource({
        path: new URL(file, FIXTURES).pathname,
        chunkSize,
        // A yield every few hundred reads of the fake clock (a yield is a timer turn: ~1 ms).
        sliceMs: 1000,
        clock: () => now++,
      });
      const snap = await source.snapshot();
      assert.deepEqual(
        snap.candidates.map(tupleKey).sort(),
        wanted,
        `${file} in ${chunkSize}-byte reads`,
      );
      assert.equal(snap.scanned, 38);
      assert.equal(snap.malformed, 0);
      for (const c of snap.candidates) {
        assert.ok(
          c.seenFrom >= snap.startedAt && c.seenFrom < c.seenTo && c.seenTo <= snap.finishedAt,
        );
      }
    }
  }
});

Deno.test("ProcfsSource.snapshot lets timers and I/O run while it reads a large table", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/table`;
    const line =
      "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=443 " +
      "src=10.0.0.2 dst=10.0.0.1 sport=443 dport=40000 [ASSURED] mark=0 zone=0 use=2\n";
    await Deno.writeTextFile(path, line.repeat(200_000));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      // A 1 ms slice: the snapshot must hand the loop back many times.
      const snap = await new ProcfsSource({ path, chunkSize: 64 * 1024, sliceMs: 1 }).snapshot();
      assert.equal(snap.scanned, 200_000);
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks > 0, "the interval fired during the snapshot");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ProcfsSource.snapshot lets sockets run while it reads: HTTP requests are answered during the read", async () => {
  const dir = await Deno.makeTempDir();
  const server = serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => ({ status: 200, body: "ok\n" }),
  });
  try {
    const path = `${dir}/table`;
    const line =
      "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=443 " +
      "src=10.0.0.2 dst=10.0.0.1 sport=443 dport=40000 [ASSURED] mark=0 zone=0 use=2\n";
    await Deno.writeTextFile(path, line.repeat(100_000));
    let reading = true;
    // A slow table: every read takes 1 ms of the loop's time, in 16 KiB reads (~1,000 of them).
    const clock = () => performance.now();
    const source = new ProcfsSource({ path, chunkSize: 16 * 1024, sliceMs: 5, clock });
    const origRead = Deno.FsFile.prototype.readSync;
    Deno.FsFile.prototype.readSync = function (p: Uint8Array) {
      const until = performance.now() + 1;
      while (performance.now() < until) { /* a slow procfs read */ }
      return origRead.call(this, p);
    };
    const snap = source.snapshot().finally(() => reading = false);
    let answeredDuringRead = 0;
    try {
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`http://127.0.0.1:${server.addr.port}/healthz`);
        await r.text();
        if (reading) answeredDuringRead++;
      }
      assert.equal((await snap).scanned, 100_000);
    } finally {
      Deno.FsFile.prototype.readSync = origRead;
      await snap.catch(() => {});
    }
    assert.equal(answeredDuringRead, 3, "every request was answered before the read ended");
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ProcfsSource.snapshot rejects for a missing file and stops when aborted", async () => {
  await assert.rejects(
    new ProcfsSource({ path: "/nonexistent/nf_conntrack" }).snapshot(),
    Deno.errors.NotFound,
  );
  const fixture = new URL("procfs_plain.txt", FIXTURES).pathname;
  await assert.rejects(
    new ProcfsSource({ path: fixture }).snapshot(AbortSignal.abort(new Error("stop"))),
    /stop/,
  );
});
