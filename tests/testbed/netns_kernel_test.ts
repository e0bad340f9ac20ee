/**
 * Tests of the namespace helper against the kernel (registered with
 * `kernelTest`: skipped, with the reason, where they cannot run). Its pure
 * argument building is tested in netns_test.ts.
 */
import assert from "node:assert/strict";
import { parseLine, type TcpEntry } from "../../lib/text/parse.ts";
import { kernelTest } from "../support/machine.ts";
import {
  type EntrySpec,
  familyOf,
  isCandidate,
  type Netns,
  startRenewer,
  tupleArgs,
  withNetns,
} from "../../testbed/netns.ts";

const sanitized = { sanitize: true };

async function netnsNames(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0] ?? "").filter((
    n,
  ) => n !== "");
}

/** The TCP entry of `spec` (same family, original tuple and zone) in a table text. */
function entryOf(table: string, spec: EntrySpec): TcpEntry | undefined {
  for (const line of table.split("\n")) {
    const r = parseLine(line);
    if (r.kind !== "tcp") continue;
    const e = r.entry;
    if (
      e.family === familyOf(spec) && e.original.src === spec.src && e.original.dst === spec.dst &&
      e.original.sport === spec.sport && e.original.dport === spec.dport &&
      e.zone === (spec.zone ?? 0)
    ) return e;
  }
  return undefined;
}

async function mustFind(ns: Netns, spec: EntrySpec): Promise<TcpEntry> {
  const e = entryOf(await ns.list(), spec);
  assert.ok(e !== undefined, `no entry for ${JSON.stringify(spec)}`);
  return e;
}

/** The kernel's conntrack id of the entry (`conntrack -L -o id` in its zone). */
async function idOf(ns: Netns, spec: EntrySpec): Promise<string> {
  const r = await ns.conntrack([
    "-L",
    "-o",
    "id",
    ...tupleArgs(spec),
    "-w",
    String(spec.zone ?? 0),
  ]);
  const ids = [...r.stdout.matchAll(/ id=(\d+)/g)].map((m) => m[1]);
  assert.equal(ids.length, 1, r.stdout);
  return ids[0]!;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const syn = (sport: number, extra: Partial<EntrySpec> = {}): EntrySpec => ({
  src: "10.0.0.1",
  dst: "10.0.0.2",
  sport,
  dport: 80,
  state: "SYN_SENT",
  timeout: 30,
  ...extra,
});

kernelTest(
  "withNetns creates a namespace with lo up and removes it when the callback returns",
  async () => {
    let name = "";
    const value = await withNetns("t-ok", async (ns) => {
      name = ns.name;
      assert.ok((await netnsNames()).includes(ns.name));
      const link = await ns.exec(["ip", "-o", "link", "show", "lo"]);
      assert.match(link.stdout, /[<,]UP[,>]/);
      assert.equal(await ns.list(), "", "a new namespace has an empty table");
      return 42;
    });
    assert.equal(value, 42);
    assert.match(name, /^cct-t-ok-\d+-\d+$/);
    assert.ok(!(await netnsNames()).includes(name));
  },
  sanitized,
);

kernelTest(
  "withNetns removes the namespace and rethrows when the callback throws",
  async () => {
    let name = "";
    const boom = new Error("boom");
    await assert.rejects(
      withNetns("t-throw", async (ns) => {
        name = ns.name;
        await ns.insert(syn(1));
        throw boom;
      }),
      (e) => e === boom,
    );
    assert.notEqual(name, "");
    assert.ok(!(await netnsNames()).includes(name));
  },
  sanitized,
);

kernelTest(
  "withNetns kills a spawned child still running before it removes the namespace",
  async () => {
    let child: Deno.ChildProcess | undefined;
    let name = "";
    await withNetns("t-spawn", async (ns) => {
      name = ns.name;
      child = ns.spawn(["sleep", "600"], { stdin: "null", stdout: "null", stderr: "null" });
      // The child runs inside the namespace: its netns is the namespace's, not ours.
      const inode = (p: string) => Deno.readLinkSync(p);
      await sleep(50);
      assert.notEqual(inode(`/proc/${child.pid}/ns/net`), inode("/proc/self/ns/net"));
      assert.equal(
        inode(`/proc/${child.pid}/ns/net`),
        (await ns.exec(["readlink", "/proc/self/ns/net"])).stdout.trim(),
      );
    });
    const status = await child!.status;
    assert.equal(status.success, false);
    assert.equal(status.signal, "SIGKILL");
    assert.ok(!(await netnsNames()).includes(name));
  },
  sanitized,
);

kernelTest(
  "Netns.insert and Netns.list round-trip IPv4/IPv6 TCP entries in zones 0 and 5",
  async () => {
    await withNetns("t-insert", async (ns) => {
      const specs: EntrySpec[] = [
        syn(1000, { timeout: 120 }),
        syn(1000, { timeout: 120, zone: 5 }),
        syn(1001, { state: "ESTABLISHED", timeout: 300, mark: 3 }),
        syn(1002, { state: "TIME_WAIT", timeout: 120, zone: 5 }),
        syn(1003, { src: "2001:db8::1", dst: "2001:db8::2", zone: 5, timeout: 120 }),
        syn(1004, { status: "SEEN_REPLY" }),
      ];
      for (const s of specs) await ns.insert(s);
      await ns.insert({
        proto: "udp",
        src: "10.0.0.1",
        dst: "10.0.0.53",
        sport: 5,
        dport: 53,
        timeout: 30,
      });
      const table = await ns.list();
      assert.equal(table.trimEnd().split("\n").length, specs.length + 1);
      assert.equal(await ns.count(), specs.length + 1);
      for (const s of specs) {
        const e = entryOf(table, s);
        assert.ok(e !== undefined, `${JSON.stringify(s)} in\n${table}`);
        assert.equal(e.state, s.state);
        assert.equal(e.unreplied, isCandidate(s), JSON.stringify(s));
        assert.equal(e.flag, s.state === "SYN_SENT" ? undefined : "ASSURED");
        assert.equal(e.mark, s.mark ?? 0);
        assert.ok(e.timeout! <= s.timeout && e.timeout! >= s.timeout - 5);
      }
      await assert.rejects(ns.insert(specs[0]!), /Such conntrack exists/);
    });
  },
  sanitized,
);

kernelTest(
  "Netns.renew pushes the timeout back up to ~120 s in zone 0 and zone 5, entry stays SYN_SENT/[UNREPLIED] with the same id",
  async () => {
    await withNetns("t-renew", async (ns) => {
      const z0 = syn(2000);
      const z5 = syn(2000, { zone: 5 }); // the same tuple in zone 5
      const v6 = syn(2001, { src: "2001:db8::1", dst: "2001:db8::2", zone: 5, mark: 11 });
      for (const s of [z0, z5, v6]) await ns.insert(s);
      const ids = await Promise.all([z0, z5, v6].map((s) => idOf(ns, s)));
      await sleep(1100);
      for (const s of [z0, z5, v6]) assert.ok((await mustFind(ns, s)).timeout! <= 29);

      // Zone 5 only: the zone-0 entry with the same tuple keeps its old timeout.
      assert.equal(await ns.renew(z5, 120), true);
      assert.equal(await ns.renew(v6, 120), true);
      let table = await ns.list();
      for (const s of [z5, v6]) {
        const e = entryOf(table, s)!;
        assert.ok(e.timeout! >= 118 && e.timeout! <= 120, `zone 5 timeout ${e.timeout}`);
        assert.equal(e.state, "SYN_SENT");
        assert.equal(e.unreplied, true);
        assert.equal(e.flag, undefined);
        assert.equal(e.mark, s.mark ?? 0);
      }
      assert.ok(entryOf(table, z0)!.timeout! <= 29, "zone 0 untouched by the zone-5 renewal");

      assert.equal(await ns.renew(z0, 120), true);
      table = await ns.list();
      const e0 = entryOf(table, z0)!;
      assert.ok(e0.timeout! >= 118 && e0.timeout! <= 120);
      assert.equal(e0.state, "SYN_SENT");
      assert.equal(e0.unreplied, true);

      // Again later: back up to ~120 each time, like a retransmitted SYN.
      await sleep(1100);
      assert.ok(entryOf(await ns.list(), z5)!.timeout! <= 118);
      assert.equal(await ns.renew(z5, 120), true);
      assert.ok(entryOf(await ns.list(), z5)!.timeout! >= 119);
      // Renewed in place: the kernel's ids did not change.
      assert.deepEqual(await Promise.all([z0, z5, v6].map((s) => idOf(ns, s))), ids);
      // Default timeout: the spec's own.
      assert.equal(await ns.renew(z0), true);
      assert.ok((await mustFind(ns, z0)).timeout! <= 30);
    });
  },
  sanitized,
);

kernelTest(
  "Netns.renew resolves false when the entry is absent (never inserted, or deleted)",
  async () => {
    await withNetns("t-absent", async (ns) => {
      const s = syn(3000, { zone: 5 });
      assert.equal(await ns.renew(s), false);
      await ns.insert(s);
      assert.equal(await ns.renew({ ...s, zone: 6 }), false, "another zone");
      assert.equal(await ns.renew(s), true);
      assert.equal(await ns.delete(s), true);
      assert.equal(await ns.renew(s), false);
      assert.equal(await ns.delete(s), false);
      assert.equal(await ns.count(), 0, "renew never creates an entry");
    });
  },
  sanitized,
);

kernelTest(
  "Netns.delete removes the tuple only in its own zone",
  async () => {
    await withNetns("t-delete", async (ns) => {
      const z0 = syn(4000), z5 = syn(4000, { zone: 5 }), z7 = syn(4000, { zone: 7 });
      for (const s of [z0, z5, z7]) await ns.insert(s);
      assert.equal(await ns.delete(z0), true);
      const table = await ns.list();
      assert.equal(entryOf(table, z0), undefined);
      assert.ok(entryOf(table, z5) && entryOf(table, z7));
    });
  },
  sanitized,
);

kernelTest(
  "Netns.renewWithConntrack renews a zone-0 entry via conntrack -U and refuses other zones",
  async () => {
    await withNetns("t-renew-cli", async (ns) => {
      const s = syn(5000);
      await ns.insert(s);
      await sleep(1100);
      assert.equal(await ns.renewWithConntrack(s, 120), true);
      const e = await mustFind(ns, s);
      assert.ok(e.timeout! >= 118, `timeout ${e.timeout}`);
      assert.equal(e.state, "SYN_SENT");
      assert.equal(e.unreplied, true);
      assert.equal(await ns.renewWithConntrack(syn(5001)), false);
      await assert.rejects(ns.renewWithConntrack(syn(5000, { zone: 5 })), /use renew\(\)/);
    });
  },
  sanitized,
);

kernelTest(
  "Netns.insertMany inserts 20,000 mixed entries with one conntrack -R batch and fails on a duplicate",
  async () => {
    await withNetns("t-bulk", async (ns) => {
      const specs: EntrySpec[] = [];
      for (let i = 0; i < 20000; i++) {
        const v6 = i % 2 === 1;
        specs.push({
          // Canonical spellings, so entryOf() can compare them with the parsed table.
          src: v6 ? `2001:db8::1:${i.toString(16)}` : `10.1.${i >> 8}.${i & 255}`,
          dst: v6 ? "2001:db8::ffff" : "10.2.0.1",
          sport: 1024 + i,
          dport: 80,
          zone: i % 3 === 0 ? 5 : 0,
          state: i % 4 === 0 ? "ESTABLISHED" : "SYN_SENT",
          timeout: 120,
        });
      }
      const t0 = performance.now();
      await ns.insertMany(specs);
      const ms = performance.now() - t0;
      console.log(
        `insertMany: 20,000 entries in ${ms.toFixed(0)} ms (${Math.round(20000 / ms * 1000)}/s)`,
      );
      assert.equal(await ns.count(), 20000);
      const table = await ns.list();
      for (const i of [0, 1, 2, 3, 19997, 19998, 19999]) {
        assert.ok(entryOf(table, specs[i]!), `entry ${i}`);
      }
      await assert.rejects(ns.insertMany([syn(1), specs[5]!, syn(2)]), /Such conntrack exists/);
      assert.equal(await ns.count(), 20001, "the batch stops at the failing line");
    });
  },
  sanitized,
);

kernelTest(
  "startRenewer renews every spec each round until stopped and reports the absent ones",
  async () => {
    await withNetns("t-renewer", async (ns) => {
      const specs = [
        syn(6000),
        syn(6000, { zone: 5 }),
        syn(6001, { src: "2001:db8::1", dst: "2001:db8::2", zone: 5 }),
      ];
      for (const s of specs) await ns.insert(s);
      const r = await startRenewer(ns, specs, 250, { timeoutSec: 120 });
      try {
        assert.equal(r.rounds, 0, "the first round is everyMs after the start");
        await sleep(700);
        assert.ok(r.rounds >= 2, `rounds ${r.rounds}`);
        assert.equal(r.renewed, r.rounds * 3);
        for (const s of specs) assert.ok((await mustFind(ns, s)).timeout! >= 118);
        assert.equal(await ns.delete(specs[1]!), true);
        await sleep(600);
        assert.deepEqual(r.absent, [specs[1]]);
      } finally {
        await r.stop();
      }
      const rounds = r.rounds;
      await sleep(600);
      assert.equal(r.rounds, rounds, "no round after stop()");
      const e = await mustFind(ns, specs[0]!);
      assert.equal(e.state, "SYN_SENT");
      assert.equal(e.unreplied, true);
    });
  },
  sanitized,
);

kernelTest(
  "Netns.sysctl sets nf_conntrack_acct and _timestamp per namespace, and entries then carry counters",
  async () => {
    await withNetns("t-sysctl-a", async (a) => {
      await withNetns("t-sysctl-b", async (b) => {
        assert.equal(await a.sysctl("net.netfilter.nf_conntrack_acct", 1), "1");
        assert.equal(await a.sysctl("net.netfilter.nf_conntrack_timestamp", 1), "1");
        assert.equal(await b.sysctl("net.netfilter.nf_conntrack_acct"), "0");
        assert.equal(await b.sysctl("net.netfilter.nf_conntrack_timestamp"), "0");
        await a.insert(syn(7000));
        await b.insert(syn(7000));
        assert.match(await a.list(), / packets=0 bytes=0 \[UNREPLIED\] .* delta-time=\d+ use=/);
        assert.doesNotMatch(await b.list(), /packets=|delta-time=/);
      });
    });
  },
  sanitized,
);
