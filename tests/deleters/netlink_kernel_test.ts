/**
 * NetlinkDeleter (and, without CAP_NET_ADMIN, the whole netlink path) against
 * the real kernel, each test in its own network
 * namespace (the driver runs inside it; this process never opens a netlink
 * socket in the host namespace). Registered with `kernelTest`: skipped, with
 * the reason, where kernel tests cannot run (a failure where CI requires them).
 */
import assert from "node:assert/strict";
import type { Snapshot } from "../../lib/model/snapshot.ts";
import type { Tuple } from "../../lib/model/tuple.ts";
import type { DeleteOutcome } from "../../lib/deleters/deleter.ts";
import type { NetlinkDumpReport } from "../../lib/sources/netlink.ts";
import { kernelTest } from "../support/machine.ts";
import { type EntrySpec, type Netns, withNetns } from "../../testbed/netns.ts";
import { runDriver } from "../support/netlink_driver.ts";

type SnapResult = Snapshot & { report: NetlinkDumpReport; filterMode: string; ms: number };
type DeleteResult = { outcomes: DeleteOutcome[]; ms: number };

const v4 = (sport: number, dport = 80, zone = 0): Tuple => ({
  family: "ipv4",
  src: "10.20.0.1",
  dst: "10.20.0.2",
  sport,
  dport,
  zone,
});

/** `conntrack -I` arguments of the SYN_SENT entry whose tuple is `v4(sport)`. */
const synArgs = (sport: number) =>
  `-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport ${sport} --dport 80 --state SYN_SENT --timeout 120`;

/** `conntrack -I ARGS` inside the namespace (ARGS space-separated); throws if it fails. */
async function insert(ns: Netns, args: string): Promise<void> {
  await ns.conntrack(["-I", ...args.split(" ")]);
}

/** The entries of the namespace's table, one line each (`conntrack -L`). */
async function listed(ns: Netns): Promise<string[]> {
  return (await ns.conntrack(["-L"])).stdout.split("\n").filter((l) => l.trim());
}

/**
 * `syn` SYN_SENT/[UNREPLIED] entries followed by `other` ESTABLISHED ones,
 * each from its own source address (10.64.0.0/10) to 10.127.0.1.
 */
function bulk(syn: number, other: number): EntrySpec[] {
  const specs: EntrySpec[] = [];
  for (let i = 0; i < syn + other; i++) {
    const src = `10.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;
    const base = { src, dst: "10.127.0.1", sport: 20000 + (i % 40000) };
    specs.push(
      i < syn
        ? { ...base, dport: 80, state: "SYN_SENT", timeout: 120 }
        : { ...base, dport: 443, state: "ESTABLISHED", timeout: 3600 },
    );
  }
  return specs;
}

const sanitized = { sanitize: true };

kernelTest(
  "NetlinkDeleter.delete on a real table removes exactly the requested tuples and leaves an ESTABLISHED entry between the same addresses and the same tuple in zone 5",
  () =>
    withNetns("nl-delete", async (ns) => {
      const syn = "--state SYN_SENT --timeout 120";
      await insert(ns, `-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 41000 --dport 80 ${syn}`);
      await insert(ns, `-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 41000 --dport 80 ${syn} --zone 5`);
      await insert(
        ns,
        "-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 41001 --dport 80 --state ESTABLISHED --status SEEN_REPLY,ASSURED --timeout 3600",
      );
      await insert(ns, `-p tcp -s 2001:db8::10 -d 2001:db8::20 --sport 41000 --dport 443 ${syn}`);
      const v6: Tuple = {
        family: "ipv6",
        src: "2001:db8::10",
        dst: "2001:db8::20",
        sport: 41000,
        dport: 443,
        zone: 0,
      };
      const [del] = await runDriver(ns, [{ op: "delete", tuples: [v4(41000), v6] }]) as [
        DeleteResult,
      ];
      assert.deepEqual(del.outcomes.map((o) => o.result), ["deleted", "deleted"]);
      const left = await listed(ns);
      assert.equal(left.length, 2, left.join("\n"));
      assert.ok(left.some((l) => /ESTABLISHED .*sport=41001 /.test(l)));
      assert.ok(left.some((l) => /SYN_SENT .*sport=41000 .*zone=5 /.test(l)));
    }),
  sanitized,
);

kernelTest(
  "NetlinkDeleter.delete on a real table returns already_gone for a missing tuple and for an entry that became ESTABLISHED, and keeps the latter",
  () =>
    withNetns("nl-gone", async (ns) => {
      await insert(ns, synArgs(42000));
      const [update, del] = await runDriver(ns, [
        {
          op: "run",
          cmd:
            "conntrack -U -p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 42000 --dport 80 --state ESTABLISHED --status SEEN_REPLY,ASSURED --timeout 3600"
              .split(" "),
        },
        { op: "delete", tuples: [v4(42000), v4(42001)] },
      ]) as [{ code: number }, DeleteResult];
      assert.equal(update.code, 0);
      assert.deepEqual(del.outcomes.map((o) => o.result), ["already_gone", "already_gone"]);
      const left = await listed(ns);
      assert.equal(left.length, 1);
      assert.match(left[0]!, /ESTABLISHED .*sport=42000 .*\[ASSURED\]/);
    }),
  sanitized,
);

kernelTest(
  "NetlinkDeleter.delete on a real table refuses a SYN_SENT entry that saw a reply and an unreplied entry in another state",
  () =>
    withNetns("nl-filters", async (ns) => {
      // SEEN_REPLY set, state still SYN_SENT: only the status check refuses it
      await insert(ns, `${synArgs(44000)} --status SEEN_REPLY`);
      // no SEEN_REPLY (the kernel prints [UNREPLIED]) but ESTABLISHED: only the state check refuses it
      await insert(
        ns,
        "-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 44001 --dport 80 --state ESTABLISHED --timeout 3600",
      );
      await insert(ns, synArgs(44002));
      const before = await listed(ns);
      assert.ok(before.some((l) => /SYN_SENT .*sport=44000 (?!.*UNREPLIED)/.test(l)));
      assert.ok(before.some((l) => /ESTABLISHED .*sport=44001 .*\[UNREPLIED\]/.test(l)));
      const [del] = await runDriver(ns, [{
        op: "delete",
        tuples: [v4(44000), v4(44001), v4(44002)],
      }]) as [DeleteResult];
      assert.deepEqual(del.outcomes.map((o) => o.result), [
        "already_gone",
        "already_gone",
        "deleted",
      ]);
      const left = await listed(ns);
      assert.equal(left.length, 2, left.join("\n"));
      assert.ok(
        left.some((l) => /sport=44000 /.test(l)) && left.some((l) => /sport=44001 /.test(l)),
      );
    }),
  sanitized,
);

/** The conntrack id of the entry with source port `sport` (`conntrack -L -o id`). */
async function idOf(ns: Netns, sport: number): Promise<number | undefined> {
  const line = (await ns.conntrack(["-L", "-o", "id"])).stdout.split("\n")
    .find((l) => l.includes(` sport=${sport} `));
  const m = line === undefined ? null : / id=(\d+)/.exec(line);
  return m === null ? undefined : Number(m[1]);
}

kernelTest(
  "NetlinkDeleter.delete refuses a reused tuple: the entry seen (old id) was replaced by a new one with the same tuple",
  () =>
    withNetns("nl-reused", async (ns) => {
      await insert(ns, synArgs(45000));
      const oldId = (await idOf(ns, 45000))!;
      assert.ok(oldId !== undefined);
      // The entry goes and a new one takes its tuple. The kernel's id hashes the
      // entry's address, so a filler entry first takes the freed slot; retry
      // until the new entry really has another id.
      let newId = oldId;
      for (let filler = 46000; newId === oldId && filler < 46020; filler++) {
        assert.ok(await ns.conntrack(["-D", "-p", "tcp", "--sport", "45000"]));
        await insert(ns, synArgs(filler));
        await insert(ns, synArgs(45000));
        newId = (await idOf(ns, 45000))!;
      }
      assert.notEqual(newId, oldId, "the kernel gave the new entry another id");
      const [stale, fresh] = await runDriver(ns, [
        { op: "delete", tuples: [{ ...v4(45000), id: oldId } as Tuple] },
        { op: "delete", tuples: [{ ...v4(45000), id: newId } as Tuple] },
      ]) as [DeleteResult, DeleteResult];
      assert.deepEqual(stale.outcomes.map((o) => o.result), ["already_gone"], "old id: refused");
      assert.deepEqual(fresh.outcomes.map((o) => o.result), ["deleted"], "its own id: deleted");
      assert.equal(await idOf(ns, 45000), undefined);
    }),
  sanitized,
);

kernelTest(
  "NetlinkDeleter.delete removes exactly the 1,000 SYN_SENT tuples of a 21,000-entry table",
  () =>
    withNetns("nl-delete-1000", async (ns) => {
      await ns.insertMany(bulk(1000, 20000));
      assert.equal(await ns.count(), 21000);
      const [before, del, after] = await runDriver(ns, [
        { op: "snapshot" },
        { op: "deleteCandidates" },
        { op: "snapshot" },
      ]) as [SnapResult, DeleteResult, SnapResult];
      assert.equal(before.candidates.length, 1000);
      assert.deepEqual(
        Object.entries(Object.groupBy(del.outcomes, (o) => o.result)).map((
          [k, v],
        ) => [k, v!.length]),
        [["deleted", 1000]],
      );
      assert.equal(after.candidates.length, 0);
      // Speed is the benchmark's business (deno task bench), not this test's.
    }),
  sanitized,
);

kernelTest(
  "checkNetlink, NetlinkSource.snapshot and NetlinkDeleter.delete report EPERM without CAP_NET_ADMIN",
  () =>
    withNetns("nl-eperm", async (ns) => {
      await insert(ns, synArgs(43000));
      const [probe, snap, del] = await runDriver(ns, [{ op: "checkNetlink" }, { op: "snapshot" }, {
        op: "delete",
        tuples: [v4(43000)],
      }], ["setpriv", "--bounding-set=-net_admin"]) as [
        { ok: boolean; reason: string },
        { error: string },
        DeleteResult,
      ];
      assert.equal(probe.ok, false);
      assert.match(probe.reason, /EPERM/);
      assert.match(snap.error, /EPERM \(Operation not permitted\)/);
      assert.equal(del.outcomes[0]!.result, "failed");
      assert.match(del.outcomes[0]!.error!, /EPERM/);
      assert.equal((await listed(ns)).length, 1, "nothing was deleted");
    }),
  { ...sanitized, needs: ["setpriv"] },
);
