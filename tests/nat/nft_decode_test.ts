/**
 * The nf_tables decoder on netlink bytes captured from a 6.18 kernel
 * (tests/fixtures/nft/rulesets.json, scripts/capture_nft_fixtures.ts): the
 * rule sets of testbed/nft_rulesets.ts read back through a replaying
 * transport, checked against `nft --debug=netlink` of the same kernel and
 * against hand-written expectations; the pure pieces on their own.
 */
import assert from "node:assert/strict";
import { readReachable } from "../../testbed/nft_driver.ts";
import {
  decodeChain,
  intervalRanges,
  mayBeBaseChain,
  type RawElement,
} from "../../lib/nat/nft_decode.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { decodeExprs } from "../../lib/nat/nft_expr.ts";
import { NftDecodeError, registerIndex } from "../../lib/nat/nft_attrs.ts";
import type { NftChain, NftSet } from "../../lib/nat/ruleset.ts";
import { compareWithDebug } from "../support/nft_debug.ts";
import { type Exchange, ReplayTransport } from "../support/nft_replay.ts";

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/nft/rulesets.json", import.meta.url)),
) as { debugNetlink: string; exchanges: Exchange[] };

const read = await readReachable(new ReplayTransport(fixture.exchanges), ["prerouting", "output"]);
const hex = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const b = (s: string) => Uint8Array.from(s.match(/../g)!, (x) => parseInt(x, 16));

function chain(table: string, name: string): NftChain {
  const c = read.chains.find((c) => c.table === table && c.name === name);
  assert.ok(c, `chain ${table} ${name} read`);
  return c;
}

function set(name: string): NftSet {
  const s = read.sets.find((s) => s.name === name);
  assert.ok(s, `set ${name} read`);
  return s;
}

Deno.test("decodeRule: every captured rule agrees with nft --debug=netlink (names, registers, data)", () => {
  const rules = read.chains.reduce((n, c) => n + c.rules.length, 0);
  assert.ok(rules >= 30, `${rules} rules read`);
  assert.deepEqual(compareWithDebug(read.chains, fixture.debugNetlink), []);
});

Deno.test("decodeChain: base chains carry hook, type, priority and policy; regular chains none", () => {
  assert.deepEqual(chain("kp", "pre").base, {
    hook: "prerouting",
    type: "nat",
    priority: -100,
    policy: "accept",
  });
  assert.deepEqual(chain("kp", "raw").base?.priority, -300);
  assert.equal(chain("kp", "raw").base?.type, "filter");
  assert.equal(chain("fw", "pre").family, "inet");
  assert.equal(chain("kp", "services").base, undefined);
  assert.deepEqual(read.dormant, ["ip6 sleepy"]);
  assert.ok(read.generation > 0 && read.generation === read.generationAfter);
});

Deno.test("decodeExprs: a native DNAT rule decodes to the model's registers and bytes", () => {
  assert.deepEqual(chain("kp", "ep1").rules[0]!.exprs, [
    { op: "meta", key: 16, dreg: 0 },
    { op: "cmp", sreg: 0, cmp: "eq", data: b("06") },
    { op: "immediate", dreg: 0, data: b("0af40105") },
    { op: "immediate", dreg: 4, data: b("1f90") },
    {
      op: "nat",
      type: "dnat",
      nfproto: 2,
      addrMin: 0,
      addrMax: 0,
      protoMin: 4,
      protoMax: 4,
      flags: 3,
    },
  ]);
  // Concatenation registers: NFT_REG32_01 is word 1, NFT_REG32_02 word 2.
  assert.deepEqual(chain("kp", "services").rules[0]!.exprs, [
    { op: "payload", base: "network", offset: 16, len: 4, dreg: 0 },
    { op: "meta", key: 16, dreg: 1 },
    { op: "payload", base: "transport", offset: 2, len: 2, dreg: 2 },
    { op: "lookup", sreg: 0, set: "service-ips", dreg: "verdict", invert: false },
  ]);
  const notIn = chain("kp", "services").rules[3]!.exprs[1];
  assert.deepEqual(notIn, { op: "lookup", sreg: 0, set: "sips", invert: true });
});

Deno.test("decodeExprs: iptables-nft xtables matches and targets keep name, revision and info", () => {
  const sep = chain("nat", "KUBE-SEP-2").rules[0]!.exprs;
  const target = sep.at(-1);
  assert.equal(target?.op, "target");
  if (target?.op !== "target") return;
  assert.equal(target.name, "DNAT");
  assert.equal(target.rev, 2);
  // nf_nat_range2: flags 3, min_addr 10.244.1.6, max_addr 10.244.1.6, ports 8080-8080
  assert.equal(hex(target.info.subarray(0, 8)), "030000000af40106");
  assert.equal(hex(target.info.subarray(36, 40)), "1f901f90");
  const stat = chain("nat", "KUBE-SVC-AAA").rules[1]!.exprs.find((e) =>
    e.op === "match" && e.name === "statistic"
  );
  assert.ok(stat);
  const owner = chain("nat", "OUTPUT").rules[1]!.exprs.find((e) => e.op === "match");
  assert.deepEqual(owner?.op === "match" ? [owner.name, owner.rev] : [], ["owner", 1]);
});

Deno.test("decodeSetElems: rbtree intervals become inclusive ranges; pipapo keeps key ends", () => {
  assert.deepEqual(set("sips").elements.map((e) => [hex(e.key), hex(e.keyEnd)]), [
    ["0a000000", "0affffff"],
    ["ac100005", "ac100005"],
    ["c0a80101", "c0a80109"],
  ]);
  const cc = set("cc");
  assert.deepEqual(cc.fieldLens, [4, 2]);
  assert.deepEqual(cc.flags.interval && cc.flags.concat && cc.flags.map, true);
  assert.deepEqual(cc.elements.map((e) => [hex(e.key), hex(e.keyEnd), e.verdict]), [
    ["0a01000000500000", "0a01ffff005a0000", { kind: "goto", chain: "svc1" }],
  ]);
  const ips = set("service-ips");
  assert.equal(ips.keyLen, 12);
  assert.equal(ips.data, "verdict");
  assert.deepEqual(ips.elements.map((e) => hex(e.key)), ["0a60000a0600000000500000"]);
  const anon = set("__map0");
  assert.ok(anon.flags.anonymous && anon.flags.constant);
  assert.deepEqual(
    anon.elements.map((e) => [hex(e.key), e.verdict]).sort(),
    [["00000000", { kind: "goto", chain: "ep1" }], ["01000000", { kind: "goto", chain: "ep2" }]],
  );
});

const raw = (key: number[], end: boolean): RawElement => ({ key: new Uint8Array(key), end });

Deno.test("intervalRanges: adjacent ranges, an open end and nft's zero end element", () => {
  const got = intervalRanges(true, [
    raw([0, 0], true),
    raw([0, 6], false),
    raw([0, 11], true),
    raw([0, 1], false),
    raw([0, 6], true),
    raw([9, 0], false),
  ]).map((e) => [hex(e.key), hex(e.keyEnd)]);
  assert.deepEqual(got, [["0001", "0005"], ["0006", "000a"], ["0900", "ffff"]]);
});

Deno.test("intervalRanges: a plain set keeps its elements; an end flag there is an error", () => {
  assert.deepEqual(intervalRanges(false, [raw([1], false)]), [{ key: new Uint8Array([1]) }]);
  assert.throws(() => intervalRanges(false, [raw([1], true)]), NftDecodeError);
});

Deno.test("registerIndex: NFT_REG_1..4 are 16-byte registers, NFT_REG32_* 4-byte words", () => {
  assert.deepEqual([0, 1, 2, 4, 8, 9, 23].map(registerIndex), ["verdict", 0, 4, 12, 0, 1, 15]);
  assert.throws(() => registerIndex(5), NftDecodeError);
  assert.throws(() => registerIndex(24), NftDecodeError);
});

Deno.test("decodeExprs: cut or garbled bytes throw NftDecodeError, never another error", () => {
  // counter, then an immediate whose data nest is cut short.
  const good = new Uint8Array([16, 0, 1, 0x80, 12, 0, 1, 0, 99, 111, 117, 110, 116, 101, 114, 0]);
  assert.deepEqual(decodeExprs(new DataView(good.buffer), 0, good.length), [{ op: "counter" }]);
  for (let cut = 1; cut < good.length; cut++) {
    const bytes = good.slice(0, cut);
    try {
      decodeExprs(new DataView(bytes.buffer), 0, bytes.length);
    } catch (e) {
      assert.ok(e instanceof NftDecodeError, `cut at ${cut}: ${e}`);
    }
  }
  let seed = 7;
  for (let i = 0; i < 2000; i++) {
    const bytes = new Uint8Array(24).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
    bytes[0] = 20; // a list element of 20 bytes
    bytes[2] = 1;
    try {
      decodeExprs(new DataView(bytes.buffer), 0, bytes.length);
    } catch (e) {
      assert.ok(e instanceof NftDecodeError, `random bytes ${hex(bytes)}: ${e}`);
    }
  }
});

Deno.test("compareWithDebug: a register or a data byte off by one is reported", () => {
  const c = chain("kp", "ep1");
  const [meta, cmp, ...rest] = c.rules[0]!.exprs;
  assert.ok(meta?.op === "meta" && cmp?.op === "cmp");
  const wrongReg = {
    ...c,
    rules: [{ ...c.rules[0]!, exprs: [{ ...meta, dreg: 1 }, cmp, ...rest] }],
  };
  assert.equal(compareWithDebug([wrongReg], fixture.debugNetlink).length, 1);
  const wrongData = {
    ...c,
    rules: [{ ...c.rules[0]!, exprs: [meta, { ...cmp, data: b("11") }, ...rest] }],
  };
  assert.equal(compareWithDebug([wrongData], fixture.debugNetlink).length, 1);
});

Deno.test("mayBeBaseChain: agrees with decodeChain on every captured chain; unframeable bytes say maybe", () => {
  const chains = fixture.exchanges.flatMap((x) =>
    x.replies.flatMap((r) =>
      parseMessages(Uint8Array.from(atob(r), (c) => c.charCodeAt(0))).messages
    )
  ).filter((m) => m.type === ((10 << 8) | 3));
  let base = 0;
  for (const m of chains) {
    const c = decodeChain(m);
    assert.equal(mayBeBaseChain(m), c?.base !== undefined, c?.name);
    if (c?.base !== undefined) base++;
  }
  assert.ok(base >= 5 && chains.length - base >= 5, `${base} base of ${chains.length}`);
  const regular = chains.find((m) => decodeChain(m)?.base === undefined)!;
  const cut = regular.payload.slice();
  new DataView(cut.buffer).setUint16(4, cut.length, true); // the first attribute runs past the end
  assert.equal(mayBeBaseChain({ ...regular, payload: cut }), true);
});

/** NFTA_LIST_ELEM { NAME "cmp", DATA { SREG 1, OP eq, DATA { VALUE [v] } } }. */
function cmpElem(v: number): number[] {
  const be32 = (type: number, n: number) => [8, 0, type, 0, 0, 0, 0, n];
  const data = [...be32(1, 1), ...be32(2, 0), 12, 0, 3, 0x80, 5, 0, 1, 0, v, 0, 0, 0];
  const name = [8, 0, 1, 0, 99, 109, 112, 0];
  const inner = [...name, data.length + 4, 0, 2, 0x80, ...data];
  return [inner.length + 4, 0, 1, 0x80, ...inner];
}

Deno.test("decodeExprs: an expression seen before is shared (frozen); one byte apart is not", () => {
  const bytes = new Uint8Array([
    ...cmpElem(0x5a),
    ...cmpElem(0x5a),
    ...cmpElem(0x5a),
    ...cmpElem(0x5b),
  ]);
  const exprs = decodeExprs(new DataView(bytes.buffer), 0, bytes.length);
  assert.deepEqual(exprs[0], { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([0x5a]) });
  assert.equal(exprs[2], exprs[1]);
  assert.ok(Object.isFrozen(exprs[2]));
  assert.deepEqual(exprs[3], { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([0x5b]) });
});
