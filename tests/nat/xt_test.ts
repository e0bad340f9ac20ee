/**
 * The xtables structs as iptables-nft 1.8.9 hands them to a 6.18 kernel:
 * the hex strings below were read back over netlink (NFTA_TARGET_INFO /
 * NFTA_MATCH_INFO) from rules written by `iptables`/`ip6tables` in a
 * scratch namespace, the command in each test's comment.
 */
import assert from "node:assert/strict";
import { Bits, u32Host } from "../../lib/nat/bits.ts";
import { formatTarget } from "../../lib/nat/targets.ts";
import { natTargets } from "../../lib/nat/nat_target.ts";
import { applyMark, decodeTarget, evalMatch } from "../../lib/nat/xt.ts";
import { addr } from "../support/nft_builder.ts";
import { ctstateInfo, markMatchInfo, multiportInfo, tcpInfo } from "../support/xt_builder.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
const SYN = {
  family: "ipv4" as const,
  src: addr("10.0.0.2"),
  dst: addr("10.96.0.10"),
  sport: 40000,
  dport: 80,
};
const UNKNOWN = { mark: Bits.unknown(4), ctmark: Bits.unknown(4) };

function targets(name: string, rev: number, info: string, family: "ipv4" | "ipv6" = "ipv4") {
  const t = decodeTarget(name, rev, hex(info), family);
  if (t.kind !== "dnat" && t.kind !== "redirect") return t.kind;
  const syn = family === "ipv4"
    ? SYN
    : { ...SYN, family, src: addr("fd00::9"), dst: addr("fd00::1") };
  const r = natTargets(syn, t.kind, t.range, "prerouting");
  return typeof r === "string" ? r : r.map(formatTarget);
}

Deno.test("decodeTarget: DNAT rev 2 as iptables-nft writes it (address and port)", () => {
  // -j DNAT --to-destination 10.244.1.5:8080
  const info =
    "030000000af401050000000000000000000000000af401050000000000000000000000001f901f900000000000000000";
  assert.deepEqual(targets("DNAT", 2, info), ["10.244.1.5:8080"]);
});

Deno.test("decodeTarget: DNAT rev 2 without a port keeps the port; ranges are whole", () => {
  // -j DNAT --to-destination 10.0.0.9
  const kept =
    "010000000a0000090000000000000000000000000a000009000000000000000000000000000000000000000000000000";
  assert.deepEqual(targets("DNAT", 2, kept), ["10.0.0.9:80"]);
  // -j DNAT --to-destination 10.0.0.2-10.0.0.5:8000-8010
  const range =
    "030000000a0000020000000000000000000000000a0000050000000000000000000000001f401f4a0000000000000000";
  assert.deepEqual(targets("DNAT", 2, range), ["10.0.0.2-10.0.0.5:8000-8010"]);
});

Deno.test("decodeTarget: ip6tables DNAT rev 2 reads 16-byte addresses", () => {
  // ip6tables -j DNAT --to-destination [fd00::2]:8080
  const info =
    "03000000fd000000000000000000000000000002fd0000000000000000000000000000021f901f900000000000000000";
  assert.deepEqual(targets("DNAT", 2, info, "ipv6"), ["[fd00:0:0:0:0:0:0:2]:8080"]);
});

Deno.test("decodeTarget: DNAT rev 0 and 1 layouts", () => {
  const compat = "01000000030000000a0000090a0000091f901f90";
  assert.deepEqual(targets("DNAT", 0, compat), ["10.0.0.9:8080"]);
  const r1 = "030000000a0000090000000000000000000000000a0000090000000000000000000000001f901f90";
  assert.deepEqual(targets("DNAT", 1, r1), ["10.0.0.9:8080"]);
  assert.equal(targets("DNAT", 0, "02000000" + compat.slice(8)), "unknown");
  assert.equal(targets("DNAT", 2, r1.slice(0, 60)), "unknown");
  assert.equal(targets("DNAT", 3, r1), "unknown");
});

Deno.test("decodeTarget: REDIRECT rev 0, compat for IPv4 and nf_nat_range for IPv6", () => {
  // -j REDIRECT --to-ports 3128
  assert.deepEqual(targets("REDIRECT", 0, "010000000200000000000000000000000c380c3800000000"), [
    "0.0.0.0-255.255.255.255:3128",
  ]);
  // ip6tables -j REDIRECT --to-ports 99
  const v6 = "02000000000000000000000000000000000000000000000000000000000000000000000000630063";
  const t = targets("REDIRECT", 0, v6, "ipv6") as string[];
  assert.deepEqual(t.map((s) => s.slice(s.lastIndexOf(":") + 1)), ["99"]);
});

Deno.test("decodeTarget: MARK rev 2 (--or-mark, --set-mark) applied bit by bit", () => {
  // -j MARK --or-mark 0x4000
  const or = decodeTarget("MARK", 2, hex("0040000000400000"), "ipv4");
  assert.deepEqual(or, { kind: "mark", value: 0x4000, mask: 0x4000 });
  const m = applyMark(Bits.unknown(4), 0x4000, 0x4000);
  assert.deepEqual([...m.known], [...u32Host(0x4000)]);
  assert.deepEqual([...m.val], [...u32Host(0x4000)]);
  // -j MARK --set-mark 7
  const set = decodeTarget("MARK", 2, hex("07000000ffffffff"), "ipv4");
  assert.deepEqual(set, { kind: "mark", value: 7, mask: 0xffffffff });
  assert.ok(applyMark(Bits.unknown(4), 7, 0xffffffff).isKnown());
});

Deno.test("decodeTarget: CONNMARK forgets both marks; LOG does nothing; others are unknown", () => {
  assert.equal(
    decodeTarget("CONNMARK", 2, hex("05000000ffffffffffffffff00000000"), "ipv4").kind,
    "marks_unknown",
  );
  assert.equal(decodeTarget("LOG", 0, new Uint8Array(32), "ipv4").kind, "noop");
  assert.equal(decodeTarget("CT", 2, new Uint8Array(72), "ipv4").kind, "unknown");
  assert.equal(decodeTarget("MASQUERADE", 0, new Uint8Array(20), "ipv4").kind, "masquerade");
});

Deno.test("evalMatch: comment is true; statistic, owner and addrtype are both ways", () => {
  assert.equal(evalMatch("comment", 0, new Uint8Array(256), SYN, UNKNOWN, true), true);
  // -m statistic --mode random --probability 0.5
  const stat = hex("000000000000004000000000000000400000000000000000");
  assert.equal(evalMatch("statistic", 0, stat, SYN, UNKNOWN, true), "both");
  // -m owner --uid-owner 1000
  const owner = hex("e8030000e803000000000000000000000100000000000000");
  assert.equal(evalMatch("owner", 1, owner, SYN, UNKNOWN, true), "both");
  assert.equal(evalMatch("addrtype", 1, new Uint8Array(8), SYN, UNKNOWN, true), "both");
});

Deno.test("evalMatch: tcp ports, flags, inversion and options", () => {
  // -m tcp (no options), as iptables-nft leaves it
  assert.equal(
    evalMatch("tcp", 0, hex("0000ffff0000ffff0000000000000000"), SYN, UNKNOWN, true),
    true,
  );
  assert.equal(evalMatch("tcp", 0, tcpInfo({ dp: [80, 80] }), SYN, UNKNOWN, true), true);
  assert.equal(evalMatch("tcp", 0, tcpInfo({ dp: [81, 90] }), SYN, UNKNOWN, true), false);
  assert.equal(evalMatch("tcp", 0, tcpInfo({ dp: [80, 80], inv: 2 }), SYN, UNKNOWN, true), false);
  assert.equal(evalMatch("tcp", 0, tcpInfo({ sp: [1, 1024], inv: 1 }), SYN, UNKNOWN, true), true);
  // --syn: SYN,RST,ACK,FIN SYN
  assert.equal(evalMatch("tcp", 0, tcpInfo({ mask: 0x17, cmp: 0x02 }), SYN, UNKNOWN, true), true);
  assert.equal(
    evalMatch("tcp", 0, tcpInfo({ mask: 0x17, cmp: 0x02, inv: 4 }), SYN, UNKNOWN, true),
    false,
  );
  // ECE/CWR may be set on a SYN: unknown
  assert.equal(evalMatch("tcp", 0, tcpInfo({ mask: 0xc2, cmp: 0x02 }), SYN, UNKNOWN, true), "both");
  assert.equal(evalMatch("tcp", 0, tcpInfo({ option: 2 }), SYN, UNKNOWN, true), "both");
});

Deno.test("evalMatch: multiport lists, ranges and inversion", () => {
  // -m multiport --dports 1,2,3 and --dports 1:5,7 as read back
  const list = hex(
    "010301000200030000000000000000000000000000000000000000000000000000000000000000000000000000000000",
  );
  assert.equal(evalMatch("multiport", 1, list, { ...SYN, dport: 2 }, UNKNOWN, true), true);
  assert.equal(evalMatch("multiport", 1, list, SYN, UNKNOWN, true), false);
  const range = hex(
    "010301000500070000000000000000000000000000000000000000000000000001000000000000000000000000000000",
  );
  assert.equal(evalMatch("multiport", 1, range, { ...SYN, dport: 4 }, UNKNOWN, true), true);
  assert.equal(evalMatch("multiport", 1, range, { ...SYN, dport: 6 }, UNKNOWN, true), false);
  assert.equal(evalMatch("multiport", 1, multiportInfo(1, [80], true), SYN, UNKNOWN, true), false);
  assert.equal(evalMatch("multiport", 1, multiportInfo(0, [40000]), SYN, UNKNOWN, true), true);
  assert.equal(
    evalMatch("multiport", 1, multiportInfo(2, [[39999, 40001]]), SYN, UNKNOWN, true),
    true,
  );
});

Deno.test("evalMatch: conntrack --ctstate and -m state decide new; other tests both ways", () => {
  // -m state --state NEW (conntrack rev 3 with the state alias flag)
  const alias = new Uint8Array(168);
  alias.set(hex("0120"), 146);
  alias.set(hex("0800"), 150);
  assert.equal(evalMatch("conntrack", 3, alias, SYN, UNKNOWN, true), true);
  assert.equal(evalMatch("conntrack", 3, ctstateInfo(2), SYN, UNKNOWN, true), false);
  assert.equal(evalMatch("conntrack", 3, ctstateInfo(8, true), SYN, UNKNOWN, true), false);
  assert.equal(evalMatch("conntrack", 3, ctstateInfo(8), SYN, UNKNOWN, false), "both");
  const more = ctstateInfo(8);
  more[146] = 3; // also the protocol
  assert.equal(evalMatch("conntrack", 3, more, SYN, UNKNOWN, true), "both");
  assert.equal(evalMatch("state", 0, u32Host(8), SYN, UNKNOWN, true), true);
  assert.equal(evalMatch("state", 0, u32Host(2), SYN, UNKNOWN, true), false);
});

Deno.test("evalMatch: mark on known and unknown bits", () => {
  const known = { mark: Bits.known(u32Host(0x4001)), ctmark: Bits.unknown(4) };
  assert.equal(evalMatch("mark", 1, markMatchInfo(0x4000, 0x4000), SYN, known, true), true);
  assert.equal(evalMatch("mark", 1, markMatchInfo(0x4000, 0x4000, true), SYN, known, true), false);
  assert.equal(evalMatch("mark", 1, markMatchInfo(0x2, 0x2), SYN, known, true), false);
  assert.equal(evalMatch("mark", 1, markMatchInfo(0x4000, 0x4000), SYN, UNKNOWN, true), "both");
});
