import assert from "node:assert/strict";
import { canonicalIPv4, canonicalIPv6 } from "../../lib/addr.ts";
import { tupleKey } from "../../lib/entry.ts";
import { kernelTest } from "../support/kernel_test.ts";
import { type EntrySpec, isCandidate, withNetns } from "../support/netns.ts";

const DRIVER = new URL("./list_driver.ts", import.meta.url).pathname;

function table(): EntrySpec[] {
  const specs: EntrySpec[] = [];
  const hosts = [["192.0.2.1", "198.51.100.2"], ["2001:db8::1", "2001:db8:0:0:1::2"]];
  for (const [src, dst] of hosts) {
    for (const zone of [0, 5, 65535]) {
      specs.push(
        { src, dst, sport: 40000, dport: 443, zone, state: "SYN_SENT", timeout: 100 + zone % 7 },
        { src, dst, sport: 40001, dport: 443, zone, state: "SYN_SENT", timeout: 60 },
        {
          src,
          dst,
          sport: 40002,
          dport: 443,
          zone,
          state: "SYN_SENT",
          status: "SEEN_REPLY",
          timeout: 60,
        },
        { src, dst, sport: 40003, dport: 443, zone, state: "ESTABLISHED", timeout: 300 },
        { src, dst, sport: 40004, dport: 443, zone, state: "TIME_WAIT", timeout: 100 },
        { src, dst, sport: 40005, dport: 443, zone, state: "SYN_RECV", timeout: 60 },
        { proto: "udp", src, dst, sport: 40006, dport: 53, zone, timeout: 30 },
        {
          src,
          dst,
          sport: 40007,
          dport: 443,
          zone,
          state: "ESTABLISHED",
          status: "",
          timeout: 300,
        },
      );
    }
  }
  return specs;
}

kernelTest(
  "procfs, netlink and conntrack sources list the same candidates of one table (IPv4, IPv6, zones)",
  async () => {
    await withNetns("sources", async (ns) => {
      const specs = table();
      await ns.insertMany(specs);
      const want = specs.filter(isCandidate).map((s) => {
        const v6 = s.src.includes(":");
        const canon = (a: string) => (v6 ? canonicalIPv6(a) : canonicalIPv4(a))!;
        return tupleKey({
          family: v6 ? "ipv6" : "ipv4",
          src: canon(s.src),
          dst: canon(s.dst),
          sport: s.sport,
          dport: s.dport,
          zone: s.zone ?? 0,
        });
      }).sort();
      assert.equal(want.length, 12, "2 families × 3 zones × 2 SYN_SENT/UNREPLIED");
      const r = await ns.exec([Deno.execPath(), "run", "-A", DRIVER], { env: { NO_COLOR: "1" } });
      assert.equal(r.code, 0, r.stderr);
      const got: Record<string, { keys: string[]; timeouts: number[] }> = JSON.parse(r.stdout);
      assert.deepEqual(Object.keys(got).sort(), ["conntrack", "netlink", "procfs"]);
      for (const [name, { keys, timeouts }] of Object.entries(got)) {
        assert.deepEqual(keys, want, name);
        for (const t of timeouts) assert.ok(t > 0 && t <= 106, `${name} timeout ${t}`);
      }
    });
  },
);
