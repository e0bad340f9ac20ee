/**
 * The flag edges through main.ts, end to end: `--listen=:PORT` serves on
 * every address and says so, `--dry-run=true` is a dry run, and
 * `--log-level=debug` says why each kept candidate was kept. Needs no root:
 * procfs source on a file, dry run.
 */
import assert from "node:assert/strict";
import { spawnMain } from "./support/run_main.ts";

Deno.test("main.ts --listen=:0 --dry-run=true --log-level=debug: serves on IPv4 and IPv6, says all addresses, logs kept candidates", async () => {
  const dir = await Deno.makeTempDir();
  const table = `${dir}/nf_conntrack`;
  await Deno.writeTextFile(
    table,
    "ipv4     2 tcp      6 100 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=0 use=2\n",
  );
  const child = spawnMain([
    "--source=procfs",
    `--proc-file=${table}`,
    "--dry-run=true",
    "--interval=100ms",
    "--listen=:0",
    "--log-level=debug",
  ]);
  const lines: Record<string, unknown>[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const p of parts) lines.push(JSON.parse(p));
    }
  })();
  const stderr = new Response(child.stderr).text();
  const find = (msg: string) => lines.find((l) => l.msg === msg);
  const until = async (done: () => boolean) => {
    for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  };
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
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await Deno.remove(dir, { recursive: true });
  }
});
