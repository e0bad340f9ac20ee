/**
 * The flag edges through main.ts, end to end: `--listen=:PORT` serves on
 * every address and says so, `--dry-run=true` is a dry run, and
 * `--log-level=debug` says why each kept candidate was kept. Needs no root:
 * procfs source on a file, dry run.
 */
import assert from "node:assert/strict";
import { runMainOnTable } from "./support/run_main.ts";

Deno.test("main.ts --listen=:0 --dry-run=true --log-level=debug: serves on IPv4 and IPv6, says all addresses, logs kept candidates", async () => {
  const { child, lines, reading, stderr, until, cleanup } = await runMainOnTable([
    "--dry-run=true",
    "--interval=100ms",
    "--listen=:0",
    "--log-level=debug",
  ]);
  const find = (msg: string) => lines.find((l) => l.msg === msg);
  try {
    await until(() => find("kept candidate") !== undefined);
    const start = find("conntrack-cleaner starting");
    assert.ok(start, "start line");
    assert.equal(start.dry_run, true);
    assert.equal(start.listen, ":0");
    const serving = find("serving /metrics, /healthz, /readyz");
    assert.ok(serving, "serving line");
    assert.equal(serving.addresses, "all IPv4 and IPv6 addresses");
    const m = /^\[::\]:(\d+)$/.exec(String(serving.listen));
    assert.ok(m, `bound [::]: ${serving.listen}`);
    for (const host of ["127.0.0.1", "[::1]"]) {
      const res: Response = await fetch(`http://${host}:${m[1]}/healthz`);
      assert.equal(res.status, 200, host);
      await res.body?.cancel();
    }
    const kept = find("kept candidate")!;
    assert.equal(kept.level, "debug");
    assert.equal(kept.sport, 40000);
    assert.match(String(kept.reason), /^renewals: renewed 0 times, not more than the threshold 3/);
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, await stderr);
    await reading;
  } finally {
    await cleanup();
  }
});
