import assert from "node:assert/strict";
import { FdFile } from "../../lib/os/fd_file.ts";

Deno.test("FdFile reads a file to its end in chunks, as Deno reads it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/data`;
    const data = new Uint8Array(100_000).map((_, i) => (i * 7) & 255);
    await Deno.writeFile(path, data);
    using f = FdFile.open(path);
    assert.equal(f.kind, "file");
    const buf = new Uint8Array(4096);
    const parts: number[] = [];
    for (let n = f.readSync(buf); n !== null; n = f.readSync(buf)) {
      parts.push(...buf.subarray(0, n));
    }
    assert.deepEqual(new Uint8Array(parts), data);
    assert.equal(f.readSync(buf), null, "still at the end");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FdFile tells what it opened from the descriptor, and a FIFO without writer does not block", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fifo = `${dir}/fifo`;
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    await Deno.symlink(fifo, `${dir}/link`);
    for (
      const [path, kind] of [
        [fifo, "fifo"],
        [`${dir}/link`, "fifo"],
        [dir, "directory"],
        ["/dev/null", "character device"],
        ["/proc/self/stat", "file"],
      ] as const
    ) {
      using f = FdFile.open(path);
      assert.equal(f.kind, kind, path);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FdFile errors are the Deno.errors classes, naming errno and path", () => {
  assert.throws(
    () => FdFile.open("/nonexistent/table"),
    (e) =>
      e instanceof Deno.errors.NotFound &&
      e.message === "ENOENT (No such file or directory): open '/nonexistent/table'",
  );
  assert.throws(
    () => FdFile.open("/dev/null/x"),
    (e) =>
      e instanceof Error && !(e instanceof Deno.errors.NotFound) &&
      /^(ENOTDIR|errno 20)\b.*: open '\/dev\/null\/x'$/.test(e.message),
  );
  const f = FdFile.open("/proc/self/stat");
  f.close();
  f.close();
  assert.throws(() => f.readSync(new Uint8Array(1)), Deno.errors.BadResource);
});
