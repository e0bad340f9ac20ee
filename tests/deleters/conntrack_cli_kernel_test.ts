/**
 * The conntrack CLI deleter against the real `conntrack` binary and the real
 * kernel, in a namespace made for each test: the safety that the fake runner
 * in conntrack_cli_test.ts can only assume. Registered with `kernelTest`.
 */
import assert from "node:assert/strict";
import type { Tuple } from "../../lib/model/tuple.ts";
import { ConntrackCliDeleter } from "../../lib/deleters/conntrack_cli.ts";
import { denoRunner, type ProcessRunner } from "../../lib/os/process.ts";
import { kernelTest } from "../support/machine.ts";
import { type EntrySpec, type Netns, tupleArgs, withNetns } from "../../testbed/netns.ts";

/** The real process runner, every command run inside `ns`. */
const inside = (ns: Netns): ProcessRunner => ({
  run: (cmd, args, options) =>
    denoRunner.run("ip", ["netns", "exec", ns.name, cmd, ...args], options),
});

const syn = (sport: number, zone = 0): EntrySpec => ({
  src: "10.30.0.1",
  dst: "10.30.0.2",
  sport,
  dport: 80,
  state: "SYN_SENT",
  timeout: 120,
  zone,
});
const tupleOf = (s: EntrySpec): Tuple => ({
  family: s.src.includes(":") ? "ipv6" : "ipv4",
  src: s.src,
  dst: s.dst,
  sport: s.sport,
  dport: s.dport,
  zone: s.zone ?? 0,
});

/** `conntrack -L` lines (every zone), one per entry. */
async function listed(ns: Netns): Promise<string[]> {
  return (await ns.conntrack(["-L"])).stdout.split("\n").filter((l) => l.trim());
}

for (const mode of ["batch", "each"] as const) {
  kernelTest(
    `ConntrackCliDeleter (${mode}) spares an entry that got its reply, or left SYN_SENT, between the decision and the delete`,
    () =>
      withNetns(`cli-replied-${mode}`, async (ns) => {
        const replied = syn(50001), established = syn(50002), still = syn(50003);
        for (const s of [replied, established, still]) await ns.insert(s);
        // decided: all three are stale. Then, before the delete:
        // the SYN/ACK arrives (the kernel moves SYN_SENT to SYN_RECV and sets SEEN_REPLY) …
        await ns.conntrack([
          "-U",
          ...tupleArgs(replied),
          "--state",
          "SYN_RECV",
          "-u",
          "SEEN_REPLY",
        ]);
        // … or the connection moves on without the reply bit (the kernel prints [UNREPLIED])
        await ns.conntrack(["-U", ...tupleArgs(established), "--state", "ESTABLISHED"]);
        const before = await listed(ns);
        assert.ok(before.some((l) => /SYN_RECV .*sport=50001 (?!.*UNREPLIED)/.test(l)));
        assert.ok(before.some((l) => /ESTABLISHED .*sport=50002 .*\[UNREPLIED\]/.test(l)));

        const d = new ConntrackCliDeleter({ mode, runner: inside(ns) });
        const out = await d.delete([replied, established, still].map(tupleOf));
        assert.deepEqual(out.map((o) => o.result), ["already_gone", "already_gone", "deleted"]);
        const left = await listed(ns);
        assert.equal(left.length, 2, left.join("\n"));
        assert.ok(left.some((l) => /sport=50001 /.test(l)));
        assert.ok(left.some((l) => /sport=50002 /.test(l)));
      }),
  );
}

kernelTest(
  "conntrack 1.4.7 -D does not apply -u UNREPLIED: a SYN_SENT entry with SEEN_REPLY is deleted (only the state filter protects the CLI deleter)",
  () =>
    withNetns("cli-unreplied-fact", async (ns) => {
      // A fact the CLI deleter's safety depends on, pinned so a change in
      // conntrack-tools shows up: -L honours -u UNREPLIED, -D does not. A real
      // SYN/ACK also moves the state to SYN_RECV, which --state SYN_SENT spares
      // (previous test); SYN_SENT + SEEN_REPLY with no state change can only
      // be made by hand, and only the netlink deleter refuses it.
      const s = syn(50005);
      await ns.insert({ ...s, status: "SEEN_REPLY" });
      const shown = await ns.conntrack(["-L", ...tupleArgs(s), "-u", "UNREPLIED"], {
        check: false,
      });
      assert.equal(shown.stdout.trim(), "", "-L -u UNREPLIED hides it");
      const d = new ConntrackCliDeleter({ mode: "each", runner: inside(ns) });
      const out = await d.delete([tupleOf(s)]);
      assert.deepEqual(out.map((o) => o.result), ["deleted"]);
      assert.deepEqual(await listed(ns), []);
    }),
);

kernelTest(
  "ConntrackCliDeleter (each) reads conntrack's '0 flow entries' exit 1 as already_gone",
  () =>
    withNetns("cli-gone", async (ns) => {
      await ns.insert(syn(50010));
      const d = new ConntrackCliDeleter({ mode: "each", runner: inside(ns) });
      const gone = tupleOf(syn(50011));
      // the raw binary: exit 1 and the message the deleter relies on
      const raw = await ns.conntrack(
        ["-D", ...tupleArgs(syn(50011)), "--state", "SYN_SENT", "-u", "UNREPLIED"],
        { check: false },
      );
      assert.equal(raw.code, 1);
      assert.match(raw.stderr, /\b0 flow entries have been deleted/);
      const out = await d.delete([gone]);
      assert.deepEqual(out, [{ tuple: gone, result: "already_gone" }]);
      assert.equal((await listed(ns)).length, 1, "the other entry is untouched");
    }),
);

kernelTest(
  "ConntrackCliDeleter (batch) deletes the others when a tuple in the middle of the batch has vanished",
  () =>
    withNetns("cli-batch-hole", async (ns) => {
      const specs = [syn(50020), syn(50021), syn(50022), syn(50023)];
      for (const s of specs) await ns.insert(s);
      assert.ok(await ns.delete(specs[1]!), "vanished before the delete");
      const d = new ConntrackCliDeleter({ mode: "batch", runner: inside(ns) });
      const out = await d.delete(specs.map(tupleOf));
      assert.deepEqual(out.map((o) => o.result), [
        "deleted",
        "already_gone",
        "deleted",
        "deleted",
      ]);
      assert.deepEqual(await listed(ns), []);
    }),
);

for (const mode of ["batch", "each"] as const) {
  kernelTest(
    `ConntrackCliDeleter (${mode}) deletes only in the tuple's own zone (0 and 7)`,
    () =>
      withNetns(`cli-zone-${mode}`, async (ns) => {
        const z0 = syn(50030, 0), z7 = syn(50030, 7), only7 = syn(50031, 7);
        for (const s of [z0, z7, only7]) await ns.insert(s);
        const d = new ConntrackCliDeleter({ mode, runner: inside(ns) });
        // zone 7 first: the zone-0 twin must stay
        let out = await d.delete([tupleOf(z7)]);
        assert.deepEqual(out.map((o) => o.result), ["deleted"]);
        let left = await listed(ns);
        assert.equal(left.length, 2, left.join("\n"));
        assert.ok(left.some((l) => /sport=50030 /.test(l) && !/zone=/.test(l)), "zone 0 kept");
        // the zone-7-only tuple asked for in zone 0: nothing to delete there
        out = await d.delete([{ ...tupleOf(only7), zone: 0 }]);
        assert.deepEqual(out.map((o) => o.result), ["already_gone"]);
        out = await d.delete([tupleOf(z0), tupleOf(only7)]);
        assert.deepEqual(out.map((o) => o.result), ["deleted", "deleted"]);
        left = await listed(ns);
        assert.deepEqual(left, []);
      }),
  );
}
