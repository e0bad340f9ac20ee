import assert from "node:assert/strict";
import { QueuedWriter } from "../../lib/log/log_writer.ts";

const dec = new TextDecoder();

Deno.test("QueuedWriter: a sink that never finishes a write blocks nothing; lines past the bound are dropped and counted", async () => {
  const started: number[] = [];
  const w = new QueuedWriter({
    maxBytes: 1000,
    // A stalled reader: the first write never returns.
    sink: { write: (p) => (started.push(p.length), new Promise<number>(() => {})) },
  });
  const t0 = performance.now();
  for (let i = 0; i < 3000; i++) w.write(`line ${String(i).padStart(4, "0")}`); // 10 bytes each
  assert.ok(performance.now() - t0 < 1000, "3,000 writes returned at once");
  assert.equal(w.dropped(), 3000 - 100, "1,000 bytes hold 100 lines");
  await w.flush(50); // returns at its timeout
  assert.deepEqual(started, [1000], "one batched write, still pending");
});

Deno.test("QueuedWriter: a slow sink gets every line, in order, in batches", async () => {
  const out: string[] = [];
  let calls = 0;
  const w = new QueuedWriter({
    sink: {
      write: async (p) => {
        calls++;
        await new Promise((r) => setTimeout(r, 5));
        // A short write: half of it, the rest comes in the next call.
        const n = Math.max(1, p.length >> 1);
        out.push(dec.decode(p.subarray(0, n)));
        return n;
      },
    },
  });
  const want: string[] = [];
  for (let i = 0; i < 500; i++) {
    want.push(`{"n":${i}}`);
    w.write(`{"n":${i}}`);
  }
  await w.flush(10_000);
  assert.equal(out.join(""), want.map((l) => l + "\n").join(""));
  assert.equal(w.dropped(), 0);
  assert.equal(w.pending(), 0);
  assert.ok(calls < 200, `${calls} writes for 500 lines`);
});

Deno.test("QueuedWriter: lines whose write fails (stdout closed) are dropped and counted, later ones still go", async () => {
  let broken = true;
  const out: string[] = [];
  const w = new QueuedWriter({
    sink: {
      write: (p) => {
        if (broken) return Promise.reject(new Deno.errors.BrokenPipe("Broken pipe (os error 32)"));
        out.push(dec.decode(p));
        return Promise.resolve(p.length);
      },
    },
  });
  w.write("a");
  w.write("b");
  await w.flush(1000);
  assert.equal(w.dropped(), 2);
  broken = false;
  w.write("c");
  await w.flush(1000);
  assert.deepEqual(out, ["c\n"]);
});

Deno.test("QueuedWriter: a line written just as the queue empties is written too", async () => {
  // Lines at every microtask distance from the end of the previous write.
  for (let gap = 0; gap < 40; gap++) {
    const out: string[] = [];
    const w = new QueuedWriter({
      sink: { write: (p) => (out.push(dec.decode(p)), Promise.resolve(p.length)) },
    });
    w.write("a");
    for (let k = 0; k < gap; k++) await Promise.resolve();
    w.write("b");
    await w.flush(1000);
    assert.equal(out.join(""), "a\nb\n", `b written ${gap} microtasks after a`);
  }
});
