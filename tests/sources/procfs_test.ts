import assert from "node:assert/strict";
import { type Tuple, tupleKey } from "../../lib/tuple.ts";
import { ProcfsSource } from "../../lib/sources/procfs.ts";

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
        sliceMs: 0,
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
