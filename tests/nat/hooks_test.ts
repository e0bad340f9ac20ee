import assert from "node:assert/strict";
import { chooseHooks } from "../../lib/nat/hooks.ts";
import { socketAnswer, socketRequest } from "../../lib/nat/sock_diag.ts";

const q = {
  family: "ipv6" as const,
  src: new Uint8Array([0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 1]),
  dst: new Uint8Array([0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 2]),
  sport: 40000,
  dport: 443,
};

Deno.test("chooseHooks: a local socket means output even from a non-local source", () => {
  assert.deepEqual(chooseHooks({ localSocket: true, localSource: false }), ["output"]);
  assert.deepEqual(chooseHooks({ localSocket: true, localSource: true }), ["output"]);
});

Deno.test("chooseHooks: no socket and a local source asks both hooks", () => {
  assert.deepEqual(chooseHooks({ localSocket: false, localSource: true }), [
    "prerouting",
    "output",
  ]);
  assert.deepEqual(chooseHooks({ localSocket: false, localSource: false }), ["prerouting"]);
});

/** An answer datagram for `msg` as the kernel writes it (inet_diag_msg). */
function answer(o: { state: number; sport: number; dport: number; family?: number }): Uint8Array {
  const buf = new Uint8Array(16 + 72);
  const v = new DataView(buf.buffer);
  v.setUint32(0, buf.length, true);
  v.setUint16(4, 20, true);
  buf[16] = o.family ?? 10;
  buf[17] = o.state;
  v.setUint16(20, o.sport, false);
  v.setUint16(22, o.dport, false);
  buf.set(q.src, 24);
  buf.set(q.dst, 40);
  return buf;
}

Deno.test("socketRequest: IPv6 tuple with the client as the local end, no cookie", () => {
  const r = socketRequest(q, 9);
  const v = new DataView(r.buffer);
  assert.equal(v.getUint32(0, true), 72);
  assert.equal(v.getUint16(6, true), 1, "a request, not a dump");
  assert.equal(r[16], 10);
  assert.equal(v.getUint16(24, false), 40000);
  assert.equal(v.getUint16(26, false), 443);
  assert.deepEqual(r.subarray(28, 44), q.src);
  assert.deepEqual(r.subarray(44, 60), q.dst);
  assert.equal(v.getUint32(64, true), 0xffffffff);
});

Deno.test("socketAnswer: only a non-listening socket with the very tuple counts", () => {
  assert.equal(socketAnswer(answer({ state: 2, sport: 40000, dport: 443 }), q), true);
  assert.equal(socketAnswer(answer({ state: 10, sport: 40000, dport: 443 }), q), false);
  assert.equal(socketAnswer(answer({ state: 2, sport: 40000, dport: 0 }), q), false);
  assert.equal(socketAnswer(answer({ state: 2, sport: 40001, dport: 443 }), q), false);
  assert.equal(socketAnswer(answer({ state: 2, sport: 40000, dport: 443, family: 2 }), q), false);
});

Deno.test("socketAnswer: ENOENT is no socket, another error throws", () => {
  const err = (code: number) => {
    const b = new Uint8Array(36);
    const v = new DataView(b.buffer);
    v.setUint32(0, 36, true);
    v.setUint16(4, 2, true);
    v.setInt32(16, -code, true);
    return b;
  };
  assert.equal(socketAnswer(err(2), q), false);
  assert.throws(() => socketAnswer(err(1), q), /sock_diag/);
});
