import assert from "node:assert/strict";
import { decodeConntrack } from "../../lib/netlink/conntrack_entry.ts";
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  CTA_FILTER,
  CTA_STATUS,
  CTA_STATUS_MASK,
  IPPROTO_UDP,
  IPS_DST_NAT,
  IPS_SEEN_REPLY,
} from "../../lib/netlink/ctnetlink.ts";
import { clientKey } from "../../lib/model/tuple.ts";
import { dumpedPayload } from "../support/netlink_fill.ts";
import {
  type NetlinkMessage,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLMSG_OVERRUN,
} from "../../lib/netlink/message.ts";
import { Errno, ErrnoError } from "../../lib/os/errno.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { translation } from "../../lib/netlink/entry_candidate.ts";
import type { NetlinkFilterMode } from "../../lib/sources/netlink_filter.ts";
import {
  concat,
  decodeRequest,
  type Delivery,
  doneFor,
  entryFor,
  entryPayloads,
  errorFor,
  FakeKernel,
  type FakeSocket,
  frame,
} from "../support/netlink_fake.ts";

const ALL = entryPayloads("dump_all");
const familyOf = (p: Uint8Array) => p[0];

/** Entries a kernel with working filters would send for a request. */
function filtered(family: number, attrs: Set<number>): Uint8Array[] {
  return ALL.filter((p) => {
    const e = decodeConntrack(p);
    if (family && familyOf(p) !== family) return false;
    if (attrs.has(CTA_FILTER) && e.proto !== 6) return false;
    if (attrs.has(CTA_STATUS) && (e.status & 2)) return false;
    return true;
  });
}

/** What a kernel that ignores every filter but the family sends: the whole table, then DONE. */
function familyOnlyAnswer(req: NetlinkMessage, k: FakeSocket): Delivery[] {
  const fam = decodeRequest(req).family;
  const entries = ALL.filter((p) => !fam || familyOf(p) === fam);
  return [
    concat(...entries.map((p) => entryFor(req.seq, k.portId, p))),
    doneFor(req.seq, k.portId),
  ];
}

/** What a kernel that applies filters sends for a dump request: one datagram, then DONE. */
function goodAnswer(req: NetlinkMessage, s: FakeSocket): Delivery[] {
  const r = decodeRequest(req);
  const entries = filtered(r.family, r.attrs);
  return [
    concat(...entries.map((p) => entryFor(req.seq, s.portId, p))),
    doneFor(req.seq, s.portId),
  ];
}

/** A kernel that applies filters and answers each dump in one datagram plus DONE. */
function goodKernel(): FakeKernel {
  return new FakeKernel(goodAnswer);
}

/**
 * A kernel that answers the IPv6 dump at once, and the IPv4 one only
 * `delayMs` after the IPv6 request came (never, when `delayMs` is
 * undefined): a source that dumped the families one after the other would
 * wait for IPv4 forever, never asking for IPv6.
 */
function ipv6FirstKernel(delayMs: number | undefined): FakeKernel {
  let ipv4: (() => void) | undefined;
  return new FakeKernel((req, s) => {
    if (decodeRequest(req).family === AF_INET6) {
      if (ipv4 !== undefined && delayMs !== undefined) setTimeout(ipv4, delayMs);
      return goodAnswer(req, s);
    }
    ipv4 = () => s.queue.push(...goodAnswer(req, s));
    return [];
  });
}

/** Resolves after `ms` milliseconds. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Asserts that nothing reads from the fake kernel any more: no dump left running. */
async function assertIdle(kernel: FakeKernel): Promise<void> {
  assert.ok(kernel.closed, "every socket closed");
  const receives = kernel.receives;
  await sleep(30);
  assert.equal(kernel.receives, receives, "no dump still reading");
}

const sports = (cs: { sport: number }[]) => cs.map((c) => c.sport).sort((a, b) => a - b);

Deno.test("NetlinkSource.snapshot asks the kernel for unreplied TCP entries, one dump per family, and returns the SYN_SENT ones", async () => {
  const kernel = goodKernel();
  const source = new NetlinkSource({ openTransport: () => kernel.open() });
  const snap = await source.snapshot();
  assert.deepEqual(sports(snap.candidates), [40001, 40002, 40003]);
  assert.equal(snap.scanned, 3);
  assert.equal(snap.malformed, 0);
  const reqs = kernel.requests.map(decodeRequest);
  assert.deepEqual(reqs.map((r) => r.family), [AF_INET, AF_INET6]);
  assert.equal(kernel.opens, 2, "one socket per family");
  assert.notEqual(kernel.senders[0], kernel.senders[1]);
  for (const r of reqs) {
    for (const a of [CTA_FILTER, CTA_STATUS, CTA_STATUS_MASK]) assert.ok(r.attrs.has(a));
  }
  assert.equal(source.filterMode, "proto+status");
  assert.deepEqual(source.lastDump, { mode: "proto+status", attempts: 1, retries: [] });
  const zone5 = snap.candidates.find((c) => c.sport === 40003)!;
  assert.equal(zone5.zone, 5);
  assert.ok(zone5.timeout > 90 && zone5.timeout <= 100);
  assert.equal(typeof zone5.id, "number");
  source.close();
  assert.ok(kernel.closed);
});

Deno.test("NetlinkSource.snapshot keeps at most maxCandidates and counts the rest without decoding them", async () => {
  const kernel = goodKernel();
  const source = new NetlinkSource({ openTransport: () => kernel.open(), maxCandidates: 2 });
  const snap = await source.snapshot();
  assert.deepEqual(
    sports(snap.candidates),
    [40001, 40003],
    "the first two to arrive (this kernel answers the IPv4 dump first)",
  );
  assert.equal(snap.overflow, 1);
  assert.equal(snap.scanned, 3);
  source.close();
});

Deno.test("NetlinkSource.snapshot runs the IPv4 and IPv6 dumps at once, on two sockets, and lists IPv4 candidates first", async () => {
  const kernel = ipv6FirstKernel(10);
  const source = new NetlinkSource({ openTransport: () => kernel.open() });
  const snap = await source.snapshot();
  assert.deepEqual(snap.candidates.map((c) => c.sport), [40001, 40003, 40002]);
  assert.deepEqual(kernel.senders.map((s) => s.portId), [4242, 4243]);
  // The sockets stay open for the next snapshot.
  assert.equal(kernel.openSockets.length, 2);
  await source.snapshot();
  assert.equal(kernel.opens, 2);
  assert.deepEqual(kernel.senders.map((s) => s.portId), [4242, 4243, 4242, 4243]);
  source.close();
  assert.ok(kernel.closed);
});

Deno.test("NetlinkSource.snapshot keeps the same maxCandidates whichever family's dump finishes first (IPv4 first)", async () => {
  const kernel = ipv6FirstKernel(10);
  const source = new NetlinkSource({ openTransport: () => kernel.open(), maxCandidates: 1 });
  const snap = await source.snapshot();
  assert.deepEqual(sports(snap.candidates), [40001], "the IPv6 dump finished first, IPv4 is kept");
  assert.equal(snap.overflow, 2);
  assert.equal(snap.scanned, 3);
  source.close();
});

Deno.test("NetlinkSource.snapshot counts only candidates as overflow when the kernel does not filter", async () => {
  // A kernel that ignores every filter and sends the whole table.
  const kernel = new FakeKernel(familyOnlyAnswer);
  const source = new NetlinkSource({
    openTransport: () => kernel.open(),
    filter: "none",
    maxCandidates: 1,
  });
  const snap = await source.snapshot();
  assert.equal(snap.candidates.length, 1);
  assert.equal(
    snap.overflow,
    2,
    "the two other SYN_SENT entries, not the ESTABLISHED, TIME_WAIT or UDP ones",
  );
  assert.equal(snap.scanned, ALL.length);
  source.close();
});

Deno.test("NetlinkSource.snapshot stops the other family's dump at once when one fails, and closes both sockets", async () => {
  for (const failing of [AF_INET, AF_INET6]) {
    // The failing family is refused (EPERM); the other one never finishes.
    const kernel = new FakeKernel((req, s) =>
      decodeRequest(req).family === failing ? [errorFor(req, s.portId, Errno.EPERM)] : []
    );
    const source = new NetlinkSource({ openTransport: () => kernel.open() });
    const t = performance.now();
    await assert.rejects(source.snapshot(), /EPERM/);
    assert.ok(performance.now() - t < 1000, "not waiting for the timeout");
    assert.equal(kernel.requests.length, 2);
    await assertIdle(kernel);
  }
});

Deno.test("NetlinkSource.snapshot throws away both families when one dump is interrupted, and dumps both again", async () => {
  for (const trouble of ["intr", "enobufs"]) {
    let v6Dumps = 0;
    const kernel = new FakeKernel((req, s): Delivery[] => {
      if (decodeRequest(req).family !== AF_INET6 || ++v6Dumps > 1) return goodAnswer(req, s);
      const intr = entryFor(req.seq, s.portId, ALL[4]!, NLM_F_MULTI | NLM_F_DUMP_INTR);
      return [trouble === "intr" ? intr : new ErrnoError(Errno.ENOBUFS, "recv(netlink)")];
    });
    const source = new NetlinkSource({ openTransport: () => kernel.open() });
    const snap = await source.snapshot();
    assert.deepEqual(snap.candidates.map((c) => c.sport), [40001, 40003, 40002], trouble);
    assert.equal(snap.scanned, 3, "nothing of the first attempt is counted");
    assert.equal(source.lastDump!.attempts, 2);
    const families = kernel.requests.map((m) => decodeRequest(m).family);
    assert.deepEqual(families, [AF_INET, AF_INET6, AF_INET, AF_INET6]);
    assert.equal(kernel.opens, 4, "both sockets are reopened");
    source.close();
  }
});

Deno.test("NetlinkSource.snapshot retries at once when one family needs a retry while the other is still waiting", async () => {
  let dumps = 0;
  // First attempt: IPv6 overruns at once, IPv4 would not answer for 10 s.
  const kernel = new FakeKernel((req, s): Delivery[] => {
    if (++dumps > 2) return goodAnswer(req, s);
    if (decodeRequest(req).family === AF_INET) return [];
    return [frame(NLMSG_OVERRUN, 0, req.seq, s.portId, new Uint8Array(0))];
  });
  const source = new NetlinkSource({ openTransport: () => kernel.open() });
  const t = performance.now();
  const snap = await source.snapshot();
  assert.ok(performance.now() - t < 1000);
  assert.equal(snap.candidates.length, 3);
  assert.deepEqual(source.lastDump!.retries, ["netlink reported NLMSG_OVERRUN"]);
  source.close();
});

Deno.test("NetlinkSource.snapshot filters in userspace whatever the kernel sends", async () => {
  for (const filter of ["status", "proto", "none"] as NetlinkFilterMode[]) {
    // A kernel that ignores every filter and sends the whole table.
    const kernel = new FakeKernel(familyOnlyAnswer);
    const source = new NetlinkSource({ filter, openTransport: () => kernel.open() });
    const snap = await source.snapshot();
    assert.deepEqual(sports(snap.candidates), [40001, 40002, 40003], filter);
    assert.equal(snap.scanned, 7);
  }
});

Deno.test("NetlinkSource.snapshot throws away a dump flagged NLM_F_DUMP_INTR and starts again, never returning half a table", async () => {
  let dumps = 0;
  const kernel = new FakeKernel((req, k) => {
    dumps++;
    const entries = filtered(AF_UNSPEC, new Set()).map((p) => entryFor(req.seq, k.portId, p));
    if (dumps === 1) {
      // The first half arrives, then the kernel flags the rest as inconsistent.
      const intr = entryFor(req.seq, k.portId, ALL[3]!, NLM_F_MULTI | NLM_F_DUMP_INTR);
      return [concat(...entries.slice(0, 3)), intr, doneFor(req.seq, k.portId)];
    }
    return [concat(...entries), doneFor(req.seq, k.portId)];
  });
  const restarts: string[] = [];
  const source = new NetlinkSource({
    filter: "none",
    openTransport: () => kernel.open(),
    onRetry: (why) => restarts.push(why),
  });
  const snap = await source.snapshot();
  assert.deepEqual(sports(snap.candidates), [40001, 40002, 40003]);
  assert.equal(snap.scanned, 7);
  assert.equal(source.lastDump!.attempts, 2);
  assert.match(source.lastDump!.retries[0]!, /NLM_F_DUMP_INTR/);
  assert.deepEqual(restarts, source.lastDump!.retries, "each restart is reported as it happens");
});

Deno.test("NetlinkSource.snapshot rejects when every retry is interrupted", async () => {
  const kernel = new FakeKernel((req, k) => [
    entryFor(req.seq, k.portId, ALL[0]!, NLM_F_MULTI | NLM_F_DUMP_INTR),
  ]);
  const source = new NetlinkSource({
    filter: "none",
    maxRetries: 2,
    openTransport: () => kernel.open(),
  });
  await assert.rejects(source.snapshot(), /failed 3 times in a row.*NLM_F_DUMP_INTR/);
  assert.equal(kernel.requests.length, 3);
});

Deno.test("NetlinkSource.snapshot starts the dump again after ENOBUFS or NLMSG_OVERRUN", async () => {
  for (const trouble of ["enobufs", "overrun"]) {
    let dumps = 0;
    const kernel = new FakeKernel((req, k): Delivery[] => {
      dumps++;
      const entries = ALL.map((p) => entryFor(req.seq, k.portId, p));
      if (dumps === 1) {
        return [
          entries[0]!,
          trouble === "enobufs"
            ? new ErrnoError(Errno.ENOBUFS, "recv(netlink)")
            : frame(NLMSG_OVERRUN, 0, req.seq, k.portId, new Uint8Array(0)),
        ];
      }
      return [concat(...entries), doneFor(req.seq, k.portId)];
    });
    const source = new NetlinkSource({ filter: "none", openTransport: () => kernel.open() });
    const snap = await source.snapshot();
    assert.equal(snap.candidates.length, 3, trouble);
    assert.equal(source.lastDump!.attempts, 2, trouble);
    assert.equal(kernel.opens, 2, "the socket is reopened after a failed dump");
  }
});

Deno.test("NetlinkSource.snapshot steps down to a status-only then an unfiltered dump when the kernel rejects the filter with EINVAL, and reports it", async () => {
  const changes: string[] = [];
  const kernel = new FakeKernel((req, k) => {
    const r = decodeRequest(req);
    if (r.attrs.has(CTA_FILTER) || r.attrs.has(CTA_STATUS)) {
      return [errorFor(req, k.portId, Errno.EINVAL)];
    }
    return [concat(...ALL.map((p) => entryFor(req.seq, k.portId, p))), doneFor(req.seq, k.portId)];
  });
  const source = new NetlinkSource({
    openTransport: () => kernel.open(),
    onFilterModeChange: (mode, why) => changes.push(`${mode}: ${why}`),
  });
  const snap = await source.snapshot();
  assert.deepEqual(sports(snap.candidates), [40001, 40002, 40003]);
  assert.equal(source.filterMode, "none");
  assert.equal(source.lastDump!.mode, "none");
  assert.equal(source.lastDump!.attempts, 3);
  assert.equal(changes.length, 2);
  assert.match(changes[0]!, /^status: kernel rejected the proto\+status dump filter \(EINVAL\)/);
  assert.match(changes[1]!, /^none: kernel rejected the status dump filter \(EINVAL\)/);
  // The next snapshot goes straight to the mode that works.
  const before = kernel.requests.length;
  await source.snapshot();
  assert.equal(kernel.requests.length, before + 1);
});

Deno.test("NetlinkSource stops asking for filter parts the kernel silently ignores, and stays correct meanwhile", async () => {
  // An old kernel: ignores CTA_FILTER and CTA_STATUS, honours the family.
  const kernel = new FakeKernel(familyOnlyAnswer);
  const modes: NetlinkFilterMode[] = [];
  const source = new NetlinkSource({
    openTransport: () => kernel.open(),
    onFilterModeChange: (m) => modes.push(m),
  });
  for (let i = 0; i < 3; i++) {
    const snap = await source.snapshot();
    assert.deepEqual(sports(snap.candidates), [40001, 40002, 40003]);
  }
  // UDP in a TCP-only dump: proto dropped at once; replied entries in two
  // snapshots running: status dropped too.
  assert.deepEqual(modes, ["status", "none"]);
});

Deno.test("NetlinkSource.snapshot rejects with the errno when the kernel refuses the dump (EPERM)", async () => {
  const kernel = new FakeKernel((req, k) => [errorFor(req, k.portId, Errno.EPERM)]);
  const source = new NetlinkSource({ openTransport: () => kernel.open() });
  await assert.rejects(source.snapshot(), (e: Error) => {
    assert.ok(e instanceof ErrnoError);
    assert.equal(e.code, "EPERM");
    assert.match(e.message, /netlink dump: EPERM \(Operation not permitted\)/);
    return true;
  });
  assert.equal(source.filterMode, "proto+status", "EPERM is not a filter problem");
});

Deno.test("NetlinkSource.snapshot rejects when NLMSG_DONE carries an error", async () => {
  const kernel = new FakeKernel((req, k) => [
    entryFor(req.seq, k.portId, ALL[0]!),
    doneFor(req.seq, k.portId, Errno.ENOMEM),
  ]);
  const source = new NetlinkSource({ filter: "none", openTransport: () => kernel.open() });
  await assert.rejects(source.snapshot(), /ENOMEM/);
});

Deno.test("NetlinkSource.snapshot ignores messages with another sequence number or port id", async () => {
  // all three are candidates: only the one meant for this request may be listed
  const bySport = (sport: number) => ALL.find((p) => decodeConntrack(p).sport === sport)!;
  const kernel = new FakeKernel((req, k) => [
    concat(
      entryFor(req.seq - 1, k.portId, bySport(40001)), // left over from an older request
      entryFor(req.seq, k.portId + 1, bySport(40003)), // for another socket
      doneFor(req.seq - 1, k.portId),
      entryFor(req.seq, k.portId, bySport(40002)),
    ),
    doneFor(req.seq, k.portId),
  ]);
  const source = new NetlinkSource({ filter: "none", openTransport: () => kernel.open() });
  const snap = await source.snapshot();
  assert.equal(snap.scanned, 1);
  assert.deepEqual(sports(snap.candidates), [40002]);
});

Deno.test("NetlinkSource.snapshot counts an undecodable entry as malformed, keeps the rest, and samples the first", async () => {
  const broken = ALL[0]!.slice(0, 30);
  const kernel = new FakeKernel((req, k) => [
    concat(entryFor(req.seq, k.portId, broken), ...ALL.map((p) => entryFor(req.seq, k.portId, p))),
    doneFor(req.seq, k.portId),
  ]);
  const source = new NetlinkSource({ filter: "none", openTransport: () => kernel.open() });
  const snap = await source.snapshot();
  assert.equal(snap.scanned, 8);
  assert.equal(snap.malformed, 1);
  assert.equal(snap.candidates.length, 3);
  assert.match(snap.firstMalformed!.reason, /attribute length|no original|stray/);
  assert.match(snap.firstMalformed!.line, /^[0-9a-f]+$/);
});

Deno.test("NetlinkSource.snapshot gives each candidate the window from the previous receive call's start to its own call's end", async () => {
  let now = 0;
  const entries = ALL.filter((p) => {
    const e = decodeConntrack(p);
    return e.proto === 6 && e.tcpState === 1;
  });
  const kernel = new FakeKernel((req, k) => [
    entryFor(req.seq, k.portId, entries[0]!),
    entryFor(req.seq, k.portId, entries[1]!),
    doneFor(req.seq, k.portId),
  ]);
  const open = () => {
    const s = kernel.open();
    const send = s.send.bind(s);
    s.send = (d) => ((now += 1), send(d));
    const recv = s.recv.bind(s);
    s.recv = (b, t) => ((now += 5), recv(b, t));
    return s;
  };
  const source = new NetlinkSource({ filter: "none", clock: () => now, openTransport: open });
  const snap = await source.snapshot();
  // send: 0 -> 1; recv #1: 1 -> 6; recv #2: 6 -> 11; recv #3 (DONE): 11 -> 16.
  assert.deepEqual(snap.candidates.map((c) => [c.seenFrom, c.seenTo]), [[0, 6], [1, 11]]);
  assert.equal(snap.startedAt, 0);
  assert.equal(snap.finishedAt, 16);
});

Deno.test("NetlinkSource.snapshot rejects with the signal's reason when aborted, and drops the sockets", async () => {
  for (const filter of ["proto+status", "none"] as NetlinkFilterMode[]) {
    const kernel = new FakeKernel(() => []); // never answers
    const source = new NetlinkSource({
      filter,
      openTransport: () => kernel.open(),
      pollIntervalMs: 5,
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("stop now")), 20);
    await assert.rejects(source.snapshot(ac.signal), /stop now/);
    assert.equal(kernel.opens, filter === "none" ? 1 : 2);
    await assertIdle(kernel);
  }
});

Deno.test("NetlinkSource.snapshot rejects with the signal's reason when aborted while one family is done and the other is not", async () => {
  const kernel = ipv6FirstKernel(undefined);
  const source = new NetlinkSource({ openTransport: () => kernel.open() });
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error("stop now")), 20);
  await assert.rejects(source.snapshot(ac.signal), /stop now/);
  await assertIdle(kernel);
});

Deno.test("NetlinkSource.snapshot rejects when the dump does not finish within timeoutMs", async () => {
  // Neither family answers; only the IPv6 one does.
  for (const kernel of [new FakeKernel(() => []), ipv6FirstKernel(undefined)]) {
    const source = new NetlinkSource({
      openTransport: () => kernel.open(),
      timeoutMs: 30,
      pollIntervalMs: 5,
    });
    await assert.rejects(source.snapshot(), /did not finish in time/);
    await assertIdle(kernel);
  }
});

Deno.test("NetlinkSource.snapshot starts again with a bigger buffer when a datagram does not fit", async () => {
  const kernel = new FakeKernel((req, k) => [
    concat(...ALL.map((p) => entryFor(req.seq, k.portId, p))),
    doneFor(req.seq, k.portId),
  ]);
  const source = new NetlinkSource({
    filter: "none",
    bufferBytes: 256,
    openTransport: () => kernel.open(),
  });
  const snap = await source.snapshot();
  assert.equal(snap.candidates.length, 3);
  assert.equal(source.lastDump!.attempts, 2);
});

Deno.test("NetlinkSource.snapshot runs one snapshot at a time when called concurrently", async () => {
  // A socket runs one dump at a time: no request may come while one is being answered.
  let busy = 0;
  const kernel = new FakeKernel((req, s) => {
    busy = Math.max(busy, s.queue.length);
    return goodAnswer(req, s);
  });
  const source = new NetlinkSource({ openTransport: () => kernel.open() });
  const [a, b] = await Promise.all([source.snapshot(), source.snapshot()]);
  assert.equal(a.candidates.length, 3);
  assert.equal(b.candidates.length, 3);
  assert.equal(kernel.requests.length, 4);
  assert.equal(kernel.opens, 2);
  assert.equal(busy, 0, "a request came on a socket whose previous dump was not read to the end");
});

Deno.test("NetlinkSource.snapshot rejects after close()", async () => {
  const kernel = goodKernel();
  const source = new NetlinkSource({ openTransport: () => kernel.open() });
  source.close();
  await assert.rejects(source.snapshot(), /closed/);
});

Deno.test("translation tells a NATed destination by its address or its port, and never guesses un-NATed", () => {
  const base = {
    family: "ipv4" as const,
    proto: 6,
    srcAddr: new Uint8Array([192, 0, 2, 1]),
    dstAddr: new Uint8Array([198, 51, 100, 80]),
    sport: 40000,
    dport: 80,
    zone: 0,
    replyZone: 0,
    status: 8,
  };
  const reply = (addr: number[], port: number) => ({
    ...base,
    replySrcAddr: new Uint8Array(addr),
    replySport: port,
  });
  assert.equal(translation(reply([198, 51, 100, 80], 80)), undefined, "un-NATed");
  assert.deepEqual(translation(reply([10, 244, 0, 5], 80)), { addr: "10.244.0.5", port: 80 });
  assert.deepEqual(translation(reply([198, 51, 100, 80], 8080)), {
    addr: "198.51.100.80",
    port: 8080,
  });
  assert.deepEqual(translation(base), { addr: "0.0.0.0", port: 0 }, "no reply tuple: not un-NATed");
});

Deno.test("NetlinkSource.snapshot with evidenceFor lists this client's translated TCP entries with their ids and reply zones, in every filter mode", async () => {
  const nat = { addr: "10.244.0.5", port: 8080 };
  const base = {
    family: "ipv4" as const,
    src: "10.10.0.1",
    dst: "10.10.0.2",
    dport: 80,
    zone: 0,
    timeout: 100,
    replySrc: nat.addr,
    replySport: nat.port,
    status: IPS_DST_NAT | IPS_SEEN_REPLY,
    tcpState: 3,
  };
  const extra = [
    dumpedPayload({ ...base, sport: 41000, id: 11 }), // this client, translated: evidence
    dumpedPayload({ ...base, sport: 41001, id: 12, proto: IPPROTO_UDP }), // DNATed UDP: not TCP
    dumpedPayload({ ...base, src: "10.10.0.9", sport: 41003, id: 13 }), // another client
    dumpedPayload({ ...base, sport: 41002, id: 14, replyZone: 5 }), // zone-reply=5 only
    dumpedPayload({ ...base, sport: 41004, id: 15, replySrc: "10.10.0.2", replySport: 80 }), // un-NATed
  ];
  const key = { family: "ipv4" as const, src: "10.10.0.1", dst: "10.10.0.2", dport: 80, zone: 0 };
  for (const filter of ["proto+status", "status", "proto", "none"] as NetlinkFilterMode[]) {
    // A kernel that ignores every filter but the family: each dump gets the whole table.
    const kernel = new FakeKernel((req, k) => {
      const fam = decodeRequest(req).family;
      const entries = [...ALL, ...extra].filter((p) => !fam || familyOf(p) === fam);
      return [
        concat(...entries.map((p) => entryFor(req.seq, k.portId, p))),
        doneFor(req.seq, k.portId),
      ];
    });
    const source = new NetlinkSource({ filter, openTransport: () => kernel.open() });
    const snap = await source.snapshot(undefined, { evidenceFor: [key] });
    assert.deepEqual(sports(snap.candidates), [40001, 40002, 40003], filter);
    assert.deepEqual(snap.evidence?.entries.get(clientKey(key)), [
      { sport: 41000, replyZone: 0, translated: nat, id: 11 },
      { sport: 41002, replyZone: 5, translated: nat, id: 14 },
    ], filter);
    assert.equal(snap.evidence?.overflow.size, 0);
    source.close();
  }
});

Deno.test("NetlinkSource.snapshot without evidence when the evidence dump fails: nothing is known", async () => {
  const key = { family: "ipv4" as const, src: "10.10.0.1", dst: "10.10.0.2", dport: 80, zone: 0 };
  const kernel = new FakeKernel((req, k) => {
    const r = decodeRequest(req);
    if (r.status === IPS_DST_NAT) {
      return [errorFor(req, k.portId, Errno.EPERM)];
    }
    return goodAnswer(req, k);
  });
  const source = new NetlinkSource({ openTransport: () => kernel.open() });
  const snap = await source.snapshot(undefined, { evidenceFor: [key] });
  assert.deepEqual(sports(snap.candidates), [40001, 40002, 40003]);
  assert.equal(snap.evidence, undefined);
  source.close();
});
