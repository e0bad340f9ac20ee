/**
 * The netlink path against the real kernel, each test in its own network
 * namespace (the driver runs inside it; this process never opens a netlink
 * socket in the host namespace). Skipped, with a message, when not root.
 */
import assert from "node:assert/strict";
import type { Candidate, Snapshot, Tuple } from "../../lib/entry.ts";
import { tupleKey } from "../../lib/entry.ts";
import type { DeleteOutcome } from "../../lib/deleters/deleter.ts";
import type { NetlinkDumpReport } from "../../lib/sources/netlink.ts";
import { FIXTURE_ENTRIES } from "../../scripts/capture_netlink_fixtures.ts";
import { KERNEL_SKIP_REASON, withNetns } from "./netns.ts";

const ignore = KERNEL_SKIP_REASON !== undefined;
if (ignore) console.warn(`netlink kernel tests skipped: ${KERNEL_SKIP_REASON}`);

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

const keys = (cs: Tuple[]) => cs.map(tupleKey).sort();

Deno.test({
  name:
    "NetlinkSource.snapshot on a real table lists exactly the SYN_SENT/UNREPLIED TCP entries (IPv4, IPv6, zone 5) in every filter mode",
  ignore,
  fn: () =>
    withNetns(async (ns) => {
      for (const e of FIXTURE_ENTRIES) await ns.insert(e.args);
      // SYN_SENT but replied: not a candidate.
      await ns.insert(
        "-p tcp -s 10.10.0.1 -d 10.10.0.2 --sport 40007 --dport 80 --state SYN_SENT --status SEEN_REPLY --timeout 120",
      );
      const [probe, kernel, status, proto, none, listing] = await ns.driver([
        { op: "probe" },
        { op: "snapshot" },
        { op: "snapshot", filter: "status" },
        { op: "snapshot", filter: "proto" },
        { op: "snapshot", filter: "none" },
        { op: "run", cmd: ["conntrack", "-L", "-o", "id"] },
      ]) as [unknown, SnapResult, SnapResult, SnapResult, SnapResult, { stdout: string }];
      assert.deepEqual(probe, { ok: true });

      const expected = keys([
        { family: "ipv4", src: "10.10.0.1", dst: "10.10.0.2", sport: 40001, dport: 80, zone: 0 },
        {
          family: "ipv6",
          src: "2001:db8::1",
          dst: "2001:db8::2",
          sport: 40002,
          dport: 443,
          zone: 0,
        },
        { family: "ipv4", src: "10.10.0.1", dst: "10.10.0.2", sport: 40003, dport: 80, zone: 5 },
      ]);
      const ids = new Map<number, number>();
      for (const line of listing.stdout.split("\n").filter(Boolean)) {
        ids.set(Number(/sport=(\d+)/.exec(line)![1]), Number(/ id=(\d+)/.exec(line)![1]));
      }
      const timeouts: Record<number, number> = { 40001: 120, 40002: 110, 40003: 100 };
      for (
        const [snap, mode] of [[kernel, "proto+status"], [status, "status"], [proto, "proto"], [
          none,
          "none",
        ]] as const
      ) {
        assert.deepEqual(keys(snap.candidates), expected, mode);
        assert.equal(snap.report.mode, mode, "this kernel accepts every filter mode");
        assert.equal(snap.report.attempts, 1);
        assert.equal(snap.malformed, 0);
        for (const c of snap.candidates as Candidate[]) {
          assert.ok(c.timeout <= timeouts[c.sport] && c.timeout >= timeouts[c.sport] - 10);
          assert.equal(c.id, ids.get(c.sport), "CTA_ID is conntrack's id");
          assert.ok(snap.startedAt <= c.seenFrom && c.seenFrom <= c.seenTo);
          assert.ok(c.seenTo <= snap.finishedAt);
        }
      }
      // The kernel filter did its job: only the 3 candidates crossed.
      assert.equal(kernel.scanned, 3);
      assert.equal(status.scanned, 4); // + the unreplied UDP entry
      assert.equal(proto.scanned, 7); // TCP only
      assert.equal(none.scanned, 8);
    }),
});

Deno.test({
  name:
    "NetlinkDeleter.delete on a real table removes exactly the requested tuples and leaves an ESTABLISHED entry between the same addresses and the same tuple in zone 5",
  ignore,
  fn: () =>
    withNetns(async (ns) => {
      const syn = "--state SYN_SENT --timeout 120";
      await ns.insert(`-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 41000 --dport 80 ${syn}`);
      await ns.insert(`-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 41000 --dport 80 ${syn} --zone 5`);
      await ns.insert(
        "-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 41001 --dport 80 --state ESTABLISHED --status SEEN_REPLY,ASSURED --timeout 3600",
      );
      await ns.insert(`-p tcp -s 2001:db8::10 -d 2001:db8::20 --sport 41000 --dport 443 ${syn}`);
      const v6: Tuple = {
        family: "ipv6",
        src: "2001:db8::10",
        dst: "2001:db8::20",
        sport: 41000,
        dport: 443,
        zone: 0,
      };
      const [del] = await ns.driver([{ op: "delete", tuples: [v4(41000), v6] }]) as [DeleteResult];
      assert.deepEqual(del.outcomes.map((o) => o.result), ["deleted", "deleted"]);
      const left = await ns.list();
      assert.equal(left.length, 2, left.join("\n"));
      assert.ok(left.some((l) => /ESTABLISHED .*sport=41001 /.test(l)));
      assert.ok(left.some((l) => /SYN_SENT .*sport=41000 .*zone=5 /.test(l)));
    }),
});

Deno.test({
  name:
    "NetlinkDeleter.delete on a real table returns already_gone for a missing tuple and for an entry that became ESTABLISHED, and keeps the latter",
  ignore,
  fn: () =>
    withNetns(async (ns) => {
      await ns.insert(
        "-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 42000 --dport 80 --state SYN_SENT --timeout 120",
      );
      const [update, del] = await ns.driver([
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
      const left = await ns.list();
      assert.equal(left.length, 1);
      assert.match(left[0], /ESTABLISHED .*sport=42000 .*\[ASSURED\]/);
    }),
});

Deno.test({
  name:
    "NetlinkDeleter.delete removes 1,000 SYN_SENT tuples from a 21,000-entry table in well under 0.2 s",
  ignore,
  fn: () =>
    withNetns(async (ns) => {
      const [fill, before, del, after] = await ns.driver([
        { op: "fill", syn: 1000, other: 20000 },
        { op: "snapshot" },
        { op: "deleteCandidates" },
        { op: "snapshot" },
      ]) as [{ created: number }, SnapResult, DeleteResult, SnapResult];
      assert.equal(fill.created, 21000);
      assert.equal(before.candidates.length, 1000);
      assert.deepEqual(
        Object.entries(Object.groupBy(del.outcomes, (o) => o.result)).map((
          [k, v],
        ) => [k, v!.length]),
        [["deleted", 1000]],
      );
      assert.equal(after.candidates.length, 0);
      console.log(
        `  snapshot of 21,000 entries: ${before.ms.toFixed(1)} ms; 1,000 deletes: ${
          del.ms.toFixed(1)
        } ms`,
      );
      assert.ok(del.ms < 200, `1,000 deletes took ${del.ms} ms`);
    }),
});

Deno.test({
  name:
    "probeNetlink, NetlinkSource.snapshot and NetlinkDeleter.delete report EPERM without CAP_NET_ADMIN",
  ignore: ignore || !["/usr/bin/setpriv", "/bin/setpriv"].some((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  }),
  fn: () =>
    withNetns(async (ns) => {
      await ns.insert(
        "-p tcp -s 10.20.0.1 -d 10.20.0.2 --sport 43000 --dport 80 --state SYN_SENT --timeout 120",
      );
      const [probe, snap, del] = await ns.driver(
        [{ op: "probe" }, { op: "snapshot" }, { op: "delete", tuples: [v4(43000)] }],
        ["setpriv", "--bounding-set=-net_admin"],
      ) as [{ ok: boolean; reason: string }, { error: string }, DeleteResult];
      assert.equal(probe.ok, false);
      assert.match(probe.reason, /EPERM/);
      assert.match(snap.error, /EPERM \(Operation not permitted\)/);
      assert.equal(del.outcomes[0].result, "failed");
      assert.match(del.outcomes[0].error!, /EPERM/);
      assert.equal((await ns.list()).length, 1, "nothing was deleted");
    }),
});
