/**
 * Informal timing of the netlink path on a big table. Makes its own network
 * namespace, fills it (default 100 000 entries, 1% of them SYN_SENT
 * unreplied), times snapshots in each filter mode and a 1 000-tuple delete,
 * and removes the namespace.
 *
 *     deno run -A tests/netlink/bench.ts [entries]
 *
 * @module
 */
import type { Tuple } from "../../lib/entry.ts";
import { IPS_ASSURED, IPS_SEEN_REPLY, TCP_CONNTRACK_ESTABLISHED } from "../../lib/netlink/codec.ts";
import { TCP_CONNTRACK_SYN_SENT, TCP_CONNTRACK_TIME_WAIT } from "../../lib/netlink/codec.ts";
import { NetlinkDeleter } from "../../lib/deleters/netlink.ts";
import { type NetlinkFilterMode, NetlinkSource } from "../../lib/sources/netlink.ts";
import { type EntrySpec, fillTable } from "./fill.ts";

function* entries(n: number): Generator<EntrySpec> {
  for (let i = 0; i < n; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const base = { family: "ipv4" as const, src, dst: "10.255.0.1", sport: 10000 + (i % 50000) };
    const kind = i % 100;
    if (kind === 0) {
      yield {
        ...base,
        dport: 80,
        zone: 0,
        tcpState: TCP_CONNTRACK_SYN_SENT,
        status: 0,
        timeout: 120,
      };
    } else if (kind < 60) {
      yield {
        ...base,
        dport: 443,
        zone: 0,
        tcpState: TCP_CONNTRACK_ESTABLISHED,
        status: IPS_SEEN_REPLY | IPS_ASSURED,
        timeout: 3600,
      };
    } else if (kind < 80) {
      yield {
        ...base,
        dport: 443,
        zone: 0,
        tcpState: TCP_CONNTRACK_TIME_WAIT,
        status: IPS_SEEN_REPLY | IPS_ASSURED,
        timeout: 120,
      };
    } else {
      yield { ...base, dport: 53, zone: 0, proto: 17, status: IPS_SEEN_REPLY, timeout: 30 };
    }
  }
}

async function inside(n: number): Promise<void> {
  let t = performance.now();
  await fillTable(entries(n));
  console.log(`filled ${n} entries in ${(performance.now() - t).toFixed(0)} ms`);
  let tuples: Tuple[] = [];
  for (const mode of ["proto+status", "status", "proto", "none"] as NetlinkFilterMode[]) {
    const source = new NetlinkSource({ filter: mode });
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      t = performance.now();
      const snap = await source.snapshot();
      times.push(performance.now() - t);
      tuples = snap.candidates;
      if (i === 4) {
        console.log(
          `snapshot ${
            mode.padEnd(12)
          } scanned=${snap.scanned} candidates=${snap.candidates.length}` +
            ` ms: ${
              times.map((x) => x.toFixed(1)).join(" ")
            } (mode used: ${source.lastDump?.mode})`,
        );
      }
    }
    source.close();
  }
  const deleter = new NetlinkDeleter();
  const batch = tuples.slice(0, 1000).map((c) => ({ ...c, timeout: undefined }));
  t = performance.now();
  const out = await deleter.delete(batch);
  const ms = performance.now() - t;
  const counts: Record<string, number> = {};
  for (const o of out) counts[o.result] = (counts[o.result] ?? 0) + 1;
  console.log(`delete ${batch.length} tuples: ${ms.toFixed(1)} ms ${JSON.stringify(counts)}`);
  t = performance.now();
  const again = await deleter.delete(batch);
  console.log(
    `delete the same ${batch.length} again: ${(performance.now() - t).toFixed(1)} ms ` +
      `(${again.filter((o) => o.result === "already_gone").length} already_gone)`,
  );
  deleter.close();
}

async function sh(...cmd: string[]): Promise<void> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1) }).output();
  if (out.code !== 0) throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

if (import.meta.main) {
  if (Deno.args[0] === "--inside") {
    await inside(Number(Deno.args[1]));
  } else {
    const n = Number(Deno.args[0] ?? 100_000);
    const ns = `cc-nl-bench-${crypto.randomUUID().slice(0, 8)}`;
    await sh("ip", "netns", "add", ns);
    try {
      const p = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          ns,
          Deno.execPath(),
          "run",
          "-A",
          import.meta.filename!,
          "--inside",
          String(n),
        ],
        stdout: "inherit",
        stderr: "inherit",
      });
      const { code } = await p.output();
      if (code !== 0) Deno.exitCode = code;
    } finally {
      await sh("ip", "netns", "del", ns);
    }
  }
}
