/**
 * NetlinkSource against the real kernel, in a namespace of its own (the
 * driver runs inside it; this process never opens a netlink socket in the
 * host namespace). Registered with `kernelTest`: skipped, with the reason,
 * where kernel tests cannot run (a failure where CI requires them).
 */
import assert from "node:assert/strict";
import type { Candidate, Snapshot } from "../../lib/model/snapshot.ts";
import type { Tuple } from "../../lib/model/tuple.ts";
import { tupleKey } from "../../lib/model/tuple.ts";
import type { NetlinkDumpReport } from "../../lib/sources/netlink.ts";
import { NETLINK_FIXTURE_ENTRIES } from "../../testbed/fixtures.ts";
import { kernelTest } from "../support/machine.ts";
import { type Netns, withNetns } from "../../testbed/netns.ts";
import { runDriver } from "../support/netlink_driver.ts";

type SnapResult = Snapshot & { report: NetlinkDumpReport; filterMode: string; ms: number };

const keys = (cs: Tuple[]) => cs.map(tupleKey).sort();

/** `conntrack -I ARGS` inside the namespace (ARGS space-separated); throws if it fails. */
async function insert(ns: Netns, args: string): Promise<void> {
  await ns.conntrack(["-I", ...args.split(" ")]);
}

const sanitized = { sanitize: true };

kernelTest(
  "NetlinkSource.snapshot on a real table lists exactly the SYN_SENT/UNREPLIED TCP entries (IPv4, IPv6, zone 5) in every filter mode",
  () =>
    withNetns("nl-snapshot", async (ns) => {
      for (const e of NETLINK_FIXTURE_ENTRIES) await insert(ns, e.args);
      // SYN_SENT but replied: not a candidate.
      await insert(
        ns,
        "-p tcp -s 10.10.0.1 -d 10.10.0.2 --sport 40007 --dport 80 --state SYN_SENT --status SEEN_REPLY --timeout 120",
      );
      const [probe, kernel, status, proto, none, listing] = await runDriver(ns, [
        { op: "checkNetlink" },
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
          assert.ok(c.timeout <= timeouts[c.sport]! && c.timeout >= timeouts[c.sport]! - 10);
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
  sanitized,
);
