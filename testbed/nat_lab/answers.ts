/**
 * Answer functions for the NAT differential test
 * (`tests/nat/differential_kernel_test.ts`, `scripts/nat_diff.ts`), in one place
 * for both.
 *
 * {@linkcode answerUnderTest} is the one the test judges: a placeholder
 * that never claims anything until the NAT reader and evaluator
 * (`lib/nat/nft_reader.ts`, `lib/nat/evaluate.ts`) are plugged in here
 * (open the reader inside the lab's node namespace with `lab.inNode`).
 *
 * The others are deliberately wrong, to show that the harness catches a
 * wrong evaluator: {@linkcode fixedWrongAnswer} always claims one target
 * nobody uses; {@linkcode naiveAnswer} reads the generated model the way a
 * careless evaluator would (first DNAT in a base chain whose positive
 * address and port matches hold; negations, jumps, marks, owner, priority
 * order and packet-path state ignored), which is often right and sometimes
 * wrong, like a real bug.
 *
 * @module
 */
import { addressBytes } from "../../lib/model/addr.ts";
import type { NatAnswer, NatQuestion, TargetRange } from "../../lib/nat/ruleset.ts";
import { evaluate } from "../../lib/nat/evaluate.ts";
import { NftRules } from "../../lib/nat/nft_reader.ts";
import { NetlinkSocket } from "../../lib/netlink/socket.ts";
import type { AnswerFactory } from "./differential.ts";
import type { NatCase } from "./generate.ts";
import type { Match, PortSpec } from "./model.ts";

/**
 * The answer function the differential test judges: the agent's own reader
 * (`NftRules`, its netlink socket opened inside the lab's node namespace)
 * with the agent's evaluator. The lab's node has neither legacy iptables
 * nor IPVS (the host checks have tests of their own). "Unreadable" counts
 * as not proven: it claims nothing.
 */
export const answerUnderTest: AnswerFactory = (lab) => {
  const rules = new NftRules({
    evaluate,
    open: () => lab.inNode(() => NetlinkSocket.open()),
    hostNat: () => Promise.resolve({ legacyNat: { ipv4: false, ipv6: false }, ipvs: [] }),
  });
  return async (q) => {
    const [a] = await rules.answer([q]);
    if (a === undefined) return { kind: "not_proven", reason: "no answer" };
    return a.kind === "unreadable" ? { kind: "not_proven", reason: `unreadable: ${a.reason}` } : a;
  };
};

/** Always "translated to 192.0.2.250:1", which no generated rule uses. */
export const fixedWrongAnswer: AnswerFactory = () => (q) => {
  const a = q.family === "ipv4"
    ? new Uint8Array([192, 0, 2, 250])
    : addressBytes("ipv6", "2001:db8:2::fa")!;
  return Promise.resolve({
    kind: "translated",
    targets: [{ addrMin: a, addrMax: a, portMin: 1, portMax: 1 }],
  });
};

function inPrefix(value: string, addr: Uint8Array): boolean {
  const [base, lenText] = value.split("/");
  const b = addressBytes(addr.length === 4 ? "ipv4" : "ipv6", base!);
  if (b === undefined || b.length !== addr.length) return false;
  const len = lenText === undefined ? b.length * 8 : Number(lenText);
  for (let bit = 0; bit < len; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((b[bit >> 3]! & mask) !== (addr[bit >> 3]! & mask)) return false;
  }
  return true;
}

function inPort(p: PortSpec, port: number): boolean {
  return typeof p === "number" ? p === port : p[0] <= port && port <= p[1];
}

/** The careless reading: positive address and port matches only. */
function naiveHolds(m: Match, q: NatQuestion): boolean {
  if (!("neg" in m) || m.neg) return true;
  if (m.kind === "daddr") return m.values.some((v) => inPrefix(v, q.dst));
  if (m.kind === "saddr") return m.values.some((v) => inPrefix(v, q.src));
  if (m.kind === "dport") return m.values.some((v) => inPort(v, q.dport));
  return true;
}

/** A careless evaluator over the generated model (see the module doc). */
export const naiveAnswer: AnswerFactory = () => (q: NatQuestion, c: NatCase) => {
  const want = q.family === "ipv4" ? 4 : 6;
  for (const rs of c.ruleSets) {
    for (const t of rs.tables) {
      if (t.family === (want === 4 ? "ip6" : "ip")) continue;
      for (const chain of t.chains) {
        if (chain.base?.type !== "nat" || chain.base.hook !== q.hook) continue;
        for (const r of chain.rules) {
          if (r.ip !== undefined && r.ip !== want) continue;
          if (!r.matches.every((m) => naiveHolds(m, q))) continue;
          if (r.action.kind !== "dnat" || r.action.to.addr === undefined) continue;
          const fam = want === 4 ? "ipv4" : "ipv6";
          const [lo, hi] = r.action.to.addr;
          const port = r.action.to.port ?? [q.dport, q.dport];
          const target: TargetRange = {
            addrMin: addressBytes(fam, lo)!,
            addrMax: addressBytes(fam, hi)!,
            portMin: port[0],
            portMax: port[1],
          };
          const answer: NatAnswer = { kind: "translated", targets: [target] };
          return Promise.resolve(answer);
        }
      }
    }
  }
  return Promise.resolve({ kind: "not_proven", reason: "no DNAT found" });
};
