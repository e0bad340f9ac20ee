import assert from "node:assert/strict";
import fc from "fast-check";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import { decodeConntrack, entryTuple } from "../../lib/netlink/conntrack_entry.ts";
import { ctMsgType, IPCTNL_MSG_CT_NEW, IPS_CONFIRMED } from "../../lib/netlink/ctnetlink.ts";
import {
  AttrCursor,
  decodeDone,
  decodeError,
  HOST_LE,
  NetlinkDecodeError,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseMessages,
} from "../../lib/netlink/message.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { rfc5952 } from "../support/gen_line.ts";
import { appendNewRequest } from "../support/netlink_fill.ts";
import {
  concat,
  doneFor,
  entryFor,
  entryPayloads,
  FakeKernel,
  fixture,
} from "../support/netlink_fake.ts";

const CAPTURED = [
  ...entryPayloads("dump_all"),
  ...entryPayloads("get_reply_ipv4"),
];

/** Runs `f`; any exception other than NetlinkDecodeError fails the property. */
function decodesOrRejects(f: () => unknown): "ok" | "rejected" {
  try {
    f();
    return "ok";
  } catch (e) {
    if (e instanceof NetlinkDecodeError) return "rejected";
    throw e;
  }
}

/** Decodes every message of a buffer the way the source does. */
function decodeAll(buf: Uint8Array): void {
  const { messages } = parseMessages(buf);
  for (const m of messages) {
    assert(m.payload.byteOffset + m.payload.length <= buf.byteOffset + buf.length);
    if (m.type === NLMSG_ERROR) decodesOrRejects(() => decodeError(m));
    else if (m.type === NLMSG_DONE) decodeDone(m);
    else decodesOrRejects(() => decodeConntrack(m.payload));
  }
}

Deno.test("parseMessages and decodeConntrack never crash on arbitrary bytes (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      decodeAll(bytes);
      decodesOrRejects(() => decodeConntrack(bytes));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("decodeConntrack rejects or decodes, never crashes on, corrupted captured messages (property)", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...CAPTURED),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.nat(),
      (payload, edits, cut) => {
        const p = payload.slice(0, payload.length - (cut % 8 === 0 ? cut % payload.length : 0));
        for (const [at, v] of edits) if (p.length) p[at % p.length] = v;
        if (decodesOrRejects(() => decodeConntrack(p)) === "ok") {
          const e = decodeConntrack(p);
          // Whatever decodes is internally consistent.
          assert.equal(e.srcAddr.length, e.family === "ipv4" ? 4 : 16);
          assert.equal(e.dstAddr.length, e.srcAddr.length);
          entryTuple(e);
        }
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("decodeConntrack rejects every captured message cut inside an attribute's data", () => {
  for (const payload of CAPTURED) {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const c = new AttrCursor(view, 4, payload.length, "test");
    while (c.next()) {
      for (let cut = c.start + 1; cut < c.start + c.size; cut++) {
        assert.throws(() => decodeConntrack(payload.subarray(0, cut)), NetlinkDecodeError);
      }
    }
  }
});

Deno.test("parseMessages stops at an nlmsg_len below the header or beyond the buffer and keeps what came before (property)", () => {
  const dump = fixture("dump_all");
  const whole = parseMessages(dump).messages;
  fc.assert(
    fc.property(fc.integer({ min: 0, max: whole.length - 1 }), fc.nat(), (which, len) => {
      const buf = dump.slice();
      // Offset of message `which`.
      let off = 0;
      for (let i = 0; i < which; i++) {
        off += (new DataView(buf.buffer).getUint32(off, HOST_LE) + 3) & ~3;
      }
      new DataView(buf.buffer).setUint32(off, len, HOST_LE);
      const r = parseMessages(buf);
      if (len < 16 || len > buf.length - off) {
        assert.ok(r.error);
        assert.equal(r.messages.length, which);
      }
      for (const m of r.messages) assert.ok(m.payload.byteOffset + m.payload.length <= buf.length);
      decodeAll(buf);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("ctnetlink entries encoded by the test encoder decode back to the same tuple, state, status and timeout (property, boundaries drawn)", () => {
  const octet = fc.oneof(fc.constantFrom(0, 255), fc.integer({ min: 0, max: 255 }));
  const group = fc.oneof(fc.constantFrom(0, 0xffff), fc.integer({ min: 0, max: 0xffff }));
  const v4 = fc.array(octet, { minLength: 4, maxLength: 4 });
  const v6: fc.Arbitrary<number[]> = fc.oneof(
    fc.constantFrom<number[]>([0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]), // ::, ::1
    fc.tuple(group, group).map(([a, b]) => [0, 0, 0, 0, 0, 0xffff, a, b]), // IPv4-mapped
    fc.array(group, { minLength: 8, maxLength: 8 }),
  );
  // Addresses go in fully written out; what must come back is the independent spelling.
  const full6 = (g: number[]) => g.map((x) => x.toString(16).padStart(4, "0")).join(":");
  const addrs = fc.oneof(
    fc.record({ family: fc.constant("ipv4" as const), src: v4, dst: v4 }),
    fc.record({ family: fc.constant("ipv6" as const), src: v6, dst: v6 }),
  );
  const u16 = fc.oneof(fc.constantFrom(0, 65535), fc.integer({ min: 0, max: 65535 }));
  fc.assert(
    fc.property(
      addrs,
      u16,
      u16,
      u16,
      fc.oneof(fc.constantFrom(0, 2, 0xffff), fc.integer({ min: 0, max: 0xffff })),
      fc.integer({ min: 0, max: 9 }),
      fc.oneof(fc.constantFrom(0, 0xffffffff), fc.nat()),
      (a, sport, dport, zone, status, tcpState, timeout) => {
        const text = (g: number[]) => (a.family === "ipv4" ? g.join(".") : full6(g));
        const want = (g: number[]) => (a.family === "ipv4" ? g.join(".") : rfc5952(g));
        const b = new MessageBuilder();
        appendNewRequest(b, 1, {
          family: a.family,
          src: text(a.src),
          dst: text(a.dst),
          sport,
          dport,
          zone,
          status,
          tcpState,
          timeout,
        });
        const m = parseMessages(b.bytes()).messages[0];
        assert.ok(m);
        assert.equal(m.type, ctMsgType(IPCTNL_MSG_CT_NEW));
        const e = decodeConntrack(m.payload);
        assert.deepEqual(entryTuple(e), {
          family: a.family,
          src: want(a.src),
          dst: want(a.dst),
          sport,
          dport,
          zone,
        });
        assert.equal(e.tcpState, tcpState);
        assert.equal(e.timeout, timeout);
        assert.equal(e.status, status | IPS_CONFIRMED, "the encoder adds IPS_CONFIRMED");
      },
    ),
    { numRuns: 1000 },
  );
});

/** Captured payloads cut inside an attribute's data: every one is rejected (test above). */
function cutPayloads(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const payload of entryPayloads("dump_all")) {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const c = new AttrCursor(view, 4, payload.length, "test");
    while (c.next()) if (c.size > 1) out.push(payload.slice(0, c.start + 1));
  }
  return out;
}

Deno.test("NetlinkSource.snapshot counts exactly the broken messages of a dump as malformed and still lists the good ones (property)", async () => {
  const good = entryPayloads("dump_all");
  // manifest.json: the SYN_SENT entries inserted are sports 40001-40003
  const candidates = new Set(
    good.filter((p) => [40001, 40002, 40003].includes(decodeConntrack(p).sport!)),
  );
  assert.equal(candidates.size, 3, "the fixture holds 3 SYN_SENT unreplied entries");
  const bad = [
    ...cutPayloads(),
    new Uint8Array(0), // no nfgenmsg header at all
    new Uint8Array([2, 0, 0]), // a short header
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.oneof(
          fc.record({ ok: fc.constant(true), p: fc.constantFrom(...good) }),
          fc.record({ ok: fc.constant(false), p: fc.constantFrom(...bad) }),
        ),
        { maxLength: 20 },
      ),
      async (payloads) => {
        // each good entry at most once: the source lists what the kernel sent
        const seen = new Set<Uint8Array>();
        const list = payloads.filter((x) => !x.ok || (!seen.has(x.p) && seen.add(x.p)));
        const kernel = new FakeKernel((req, k) => [
          concat(...list.map((x) => entryFor(req.seq, k.portId, x.p))),
          doneFor(req.seq, k.portId),
        ]);
        const source = new NetlinkSource({ filter: "none", openTransport: () => kernel.open() });
        const snap = await source.snapshot();
        source.close();
        assert.equal(snap.scanned, list.length);
        assert.equal(snap.malformed, list.filter((x) => !x.ok).length);
        assert.equal(snap.candidates.length, list.filter((x) => candidates.has(x.p)).length);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("NetlinkSource.snapshot never rejects a dump of random bytes and trailing junk (property)", async () => {
  const good = entryPayloads("dump_all");
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(fc.constantFrom(...good), fc.uint8Array({ maxLength: 200 })), {
        maxLength: 20,
      }),
      fc.uint8Array({ maxLength: 40 }),
      async (payloads, tail) => {
        const kernel = new FakeKernel((req, k) => [
          concat(...payloads.map((p) => entryFor(req.seq, k.portId, p)), tail),
          doneFor(req.seq, k.portId),
        ]);
        const source = new NetlinkSource({ filter: "none", openTransport: () => kernel.open() });
        const snap = await source.snapshot();
        source.close();
        assert.ok(snap.malformed <= snap.scanned);
        for (const c of snap.candidates) assert.ok([40001, 40002, 40003].includes(c.sport));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("MessageBuilder output does not depend on its initial capacity (property)", () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant("u8"), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant("be16"), v: fc.integer({ min: 0, max: 0xffff }) }),
    fc.record({ k: fc.constant("be32"), v: fc.nat() }),
    fc.record({ k: fc.constant("raw"), v: fc.uint8Array({ maxLength: 40 }) }),
    fc.record({ k: fc.constant("nest"), v: fc.constant(0) }),
  );
  const build = (ops: { k: string; v: number | Uint8Array }[], capacity: number) => {
    const b = new MessageBuilder(capacity);
    b.beginMessage(ctMsgType(IPCTNL_MSG_CT_NEW), 0, 1, 2);
    let open = 0;
    for (const o of ops) {
      if (o.k === "u8") b.u8(1, o.v as number);
      else if (o.k === "be16") b.be16(2, o.v as number);
      else if (o.k === "be32") b.be32(3, o.v as number);
      else if (o.k === "raw") b.raw(4, o.v as Uint8Array);
      else if (open < 3) (b.beginNest(5), open++);
      else (b.endNest(), open--);
    }
    while (open--) b.endNest();
    b.endMessage();
    return b.bytes();
  };
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      assert.deepEqual(build(ops, 1), build(ops, 1 << 16));
    }),
    { numRuns: 500 },
  );
});
