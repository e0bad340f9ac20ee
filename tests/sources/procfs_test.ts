import assert from "node:assert/strict";
import { type Tuple, tupleKey } from "../../lib/model/tuple.ts";
import { openTable, ProcfsSource, type TableFile } from "../../lib/sources/procfs.ts";
import { serveHttp } from "../../lib/serve/http.ts";

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
    const open = (p: string): TableFile => {
      const file = openTable(p);
      return {
        readSync(buf) {
          const until = performance.now() + 1;
          while (performance.now() < until) { /* a slow procfs read */ }
          return file.readSync(buf);
        },
        [Symbol.dispose]: () => file[Symbol.dispose](),
      };
    };
    const source = new ProcfsSource({ path, chunkSize: 16 * 1024, sliceMs: 5, clock, open });
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

Deno.test("ProcfsSource: a --proc-file that is or becomes a FIFO is refused at once, never blocks in open(2)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fifo = `${dir}/fifo`, real = `${dir}/table`, link = `${dir}/link`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(mk.success);
    await Deno.writeTextFile(real, "");
    await Deno.symlink(real, link);
    // In a child: a FIFO with no writer would block its whole thread in open(2).
    const code = `
import { ProcfsSource } from ${
      JSON.stringify(new URL("../../lib/sources/procfs.ts", import.meta.url).href)
    };
const out = [];
try { await new ProcfsSource({ path: ${JSON.stringify(fifo)} }).snapshot(); out.push("read"); }
catch (e) { out.push(e.message); }
// A symlink that points at the table when checked by path and at the FIFO
// right after: every stat by path flips it.
const flip = () => { Deno.removeSync(${JSON.stringify(link)}); Deno.symlinkSync(${
      JSON.stringify(fifo)
    }, ${JSON.stringify(link)}); };
for (const name of ["statSync", "lstatSync"]) {
  const orig = Deno[name];
  Deno[name] = (p) => { const st = orig(p); if (p === ${JSON.stringify(link)}) flip(); return st; };
}
try { const s = await new ProcfsSource({ path: ${
      JSON.stringify(link)
    } }).snapshot(); out.push("read " + s.scanned); }
catch (e) { out.push(e.message); }
console.log(JSON.stringify(out));`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const out = await child.output();
    clearTimeout(timer);
    const dec = new TextDecoder();
    assert.equal(out.code, 0, `blocked or failed: ${dec.decode(out.stderr)}`);
    const [direct, flipped] = JSON.parse(dec.decode(out.stdout));
    assert.match(direct, /is a FIFO: the table must be a regular or procfs file/);
    // Either the open saw the table (nothing checked by path first) or it saw the FIFO and refused.
    assert.match(flipped, /^read 0$|is a FIFO/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
