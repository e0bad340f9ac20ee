/**
 * `deno task demo`: the whole story in a throwaway network namespace.
 *
 * Fills the namespace's conntrack table with background connections, clients
 * stuck retrying from fixed source ports toward a service address, entries
 * left to decay and a healthy connection between the same two hosts; emulates
 * the retries; runs the agent; shows before/after counts. Exits 0 when the
 * stuck entries went and everything else stayed, 1 otherwise. Always removes
 * the namespace, also on Ctrl-C or error. Needs root, iproute2 and conntrack.
 *
 * @module
 */
import {
  canRunKernelTests,
  type EntrySpec,
  startRenewer,
  withNetns,
} from "../tests/support/netns.ts";
import { present } from "../tests/e2e/scenario.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CLIENT = "203.0.113.10";
const SERVICE = "198.51.100.80";

function table() {
  const stuck: EntrySpec[] = [40001, 40002, 40003, 40004].map((sport) => ({
    src: CLIENT,
    dst: SERVICE,
    sport,
    dport: 443,
    state: "SYN_SENT",
    timeout: 120,
  }));
  const decaying: EntrySpec[] = [41001, 41002, 41003].map((sport, i) => ({
    src: "203.0.113.20",
    dst: SERVICE,
    sport,
    dport: 443,
    state: "SYN_SENT",
    timeout: 110 - 20 * i,
  }));
  const healthy: EntrySpec[] = [{
    src: CLIENT,
    dst: SERVICE,
    sport: 40100,
    dport: 443,
    state: "ESTABLISHED",
    timeout: 432000,
  }];
  const background: EntrySpec[] = [];
  for (let i = 1; i <= 500; i++) {
    const src = `10.244.${i >> 8}.${i & 255}`;
    background.push({
      src,
      dst: "10.96.0.10",
      sport: 30000 + i,
      dport: 443,
      state: "ESTABLISHED",
      timeout: 432000,
    });
    background.push({
      src,
      dst: "10.96.0.11",
      sport: 31000 + i,
      dport: 80,
      state: "TIME_WAIT",
      timeout: 120,
    });
    background.push({
      proto: "udp",
      src,
      dst: "10.96.0.53",
      sport: 32000 + i,
      dport: 53,
      timeout: 30,
    });
  }
  return { stuck, decaying, healthy, background };
}

const say = (s = "") => console.log(s);

async function demo(stop: AbortSignal): Promise<boolean> {
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.error(`demo: cannot run here: ${skip}. It needs root, iproute2 and conntrack-tools.`);
    return false;
  }
  return await withNetns("demo", async (ns) => {
    const t = table();
    const groups: [string, EntrySpec[], boolean][] = [
      ["stuck clients (SYN_SENT, retried every second)", t.stuck, false],
      ["decaying SYN_SENT (no retries)", t.decaying, true],
      ["healthy connection, same two hosts", t.healthy, true],
      ["background (ESTABLISHED, TIME_WAIT, UDP)", t.background, true],
    ];
    await ns.insertMany(groups.flatMap(([, specs]) => specs));
    say(`Namespace ${ns.name}: ${await ns.count()} conntrack entries.`);
    say(`Clients ${CLIENT} keep sending SYNs from fixed source ports to ${SERVICE}:443, which`);
    say("has no endpoints yet. On older kernels each retransmitted SYN renews the un-NATed");
    say("SYN_SENT entry; recent kernels (like the one running this demo, most likely) no");
    say("longer do, so the demo renews them itself, once a second, over ctnetlink — the same");
    say("timeout refresh `conntrack -U -t 120` does.");
    say();
    const before = await ns.list();
    const counts = (text: string) =>
      groups.map(([, specs]) => specs.filter((s) => present(text, s)).length);
    const beforeCounts = counts(before);

    const renewer = await startRenewer(ns, t.stuck, 1000, { timeoutSec: 120 });
    const agent = ns.spawn([
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "--listen=off",
      "--log-format=text",
    ], {
      env: {
        CONNTRACK_TABLE_DUMP_FREQUENCY: "1s",
        CONNECTION_RENEWAL_THRESHOLD: "3",
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
    });
    const pipe = async (s: ReadableStream<Uint8Array>) => {
      for await (const line of s.pipeThrough(new TextDecoderStream()).pipeThrough(lines())) {
        say(`  agent | ${line}`);
      }
    };
    const piping = Promise.all([pipe(agent.stdout), pipe(agent.stderr)]);
    say(
      "Running: conntrack-cleaner --interval=1s --threshold=3 (deletes after more than 3 renewals)",
    );
    const t0 = performance.now();
    let goneAt: number | undefined;
    while (!stop.aborted && performance.now() - t0 < 30_000) {
      const now = await ns.list();
      if (t.stuck.every((s) => !present(now, s))) {
        goneAt = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    if (goneAt !== undefined && !stop.aborted) await new Promise((r) => setTimeout(r, 2000));
    await renewer.stop();
    const after = await ns.list();
    try {
      agent.kill("SIGTERM");
    } catch { /* already exited */ }
    const status = await agent.status;
    await piping;
    if (stop.aborted) {
      say("Interrupted; removing the namespace.");
      return false;
    }
    const afterCounts = counts(after);
    say();
    say(`${"".padEnd(50)} before  after  expected`);
    let ok = status.code === 0;
    groups.forEach(([label, specs, keep], i) => {
      const want = keep ? specs.length : 0;
      const good = afterCounts[i] === want && beforeCounts[i] === specs.length;
      ok &&= good;
      say(
        `${label.padEnd(50)} ${String(beforeCounts[i]).padStart(6)} ${
          String(afterCounts[i]).padStart(6)
        } ${String(want).padStart(9)}  ${good ? "ok" : "WRONG"}`,
      );
    });
    say();
    say(
      ok
        ? `The story held: the stuck entries were deleted after ${
          (goneAt! / 1000).toFixed(1)
        } s; their next SYN would get a fresh, NATed entry. Everything else stayed.`
        : `The story did NOT hold (agent exit code ${status.code}).`,
    );
    return ok;
  });
}

function lines(): TransformStream<string, string> {
  let buf = "";
  return new TransformStream({
    transform(chunk, c) {
      buf += chunk;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const p of parts) c.enqueue(p);
    },
    flush(c) {
      if (buf) c.enqueue(buf);
    },
  });
}

if (import.meta.main) {
  const stop = new AbortController();
  const onInt = () => stop.abort();
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onInt);
  let ok = false;
  try {
    ok = await demo(stop.signal);
  } catch (e) {
    console.error(`demo failed: ${e instanceof Error ? e.stack : e}`);
  }
  Deno.exit(ok ? 0 : 1);
}
