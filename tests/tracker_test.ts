import assert from "node:assert/strict";
import fc from "fast-check";
import type { Candidate, Snapshot, Tuple } from "../lib/entry.ts";
import { RenewalTracker } from "../lib/tracker.ts";

/**
 * A simulated kernel: entries with an expiry in jiffies, printed the way
 * ct_seq_show() prints them (whole seconds left, rounded down), read by a
 * snapshot that takes time, each line formatted at its own moment.
 */
class SimKernel {
  /** expiry in jiffies, per tuple */
  expires = new Map<string, number>();
  constructor(readonly hz: number) {}
  jiffies(tMs: number): number {
    return Math.floor((tMs * this.hz) / 1000);
  }
  /** `conntrack -U -t seconds` (or an older kernel seeing a retransmitted SYN) at time t. */
  renew(key: string, tMs: number, seconds = 120): void {
    this.expires.set(key, this.jiffies(tMs) + seconds * this.hz);
  }
  printed(key: string, tMs: number): number | undefined {
    const left = this.expires.get(key)! - this.jiffies(tMs);
    return left > 0 ? Math.floor(left / this.hz) : undefined;
  }
}

const tuple = (sport: number): Tuple => ({
  family: "ipv4",
  src: "192.0.2.10",
  dst: "198.51.100.7",
  sport,
  dport: 443,
  zone: 0,
});
const key = (t: Tuple) => String(t.sport);

/** One snapshot from `start`, lasting `duration`; each line formatted at `at(i)` within it. */
function snapshot(
  k: SimKernel,
  tuples: Tuple[],
  start: number,
  duration: number,
  at: (i: number) => number,
): Snapshot {
  const candidates: Candidate[] = [];
  tuples.forEach((t, i) => {
    const printed = k.printed(key(t), start + at(i) * duration);
    if (printed !== undefined) {
      candidates.push({ ...t, timeout: printed, seenFrom: start, seenTo: start + duration });
    }
  });
  return {
    candidates,
    scanned: tuples.length,
    malformed: 0,
    startedAt: start,
    finishedAt: start + duration,
  };
}

Deno.test("RenewalTracker never counts a renewal for entries that are not renewed (any interval, duration, phase, HZ)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 100, max: 180_000 }), // poll interval ms
      fc.integer({ min: 0, max: 1500 }), // snapshot duration ms
      fc.integer({ min: 0, max: 999_999 }), // phase (µs), of the first poll against the kernel's seconds
      fc.constantFrom(100, 250, 300, 1000), // kernel HZ
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 40 }),
      (interval, duration, phaseUs, hz, positions) => {
        const k = new SimKernel(hz);
        const tuples = positions.map((_, i) => tuple(1000 + i));
        tuples.forEach((t, i) => k.renew(key(t), i * 37, 120)); // created once, then left alone
        const tracker = new RenewalTracker({ threshold: 0 });
        for (let start = 5000 + phaseUs / 1000; start < 5000 + 125_000; start += interval) {
          const r = tracker.observe(snapshot(k, tuples, start, duration, (i) => positions[i]));
          assert.equal(r.renewals, 0, `false renewal at t=${start}`);
          assert.deepEqual(r.stale, []);
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("RenewalTracker never counts more renewals than really happened", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 100, max: 10_000 }),
      fc.integer({ min: 0, max: 800 }),
      fc.constantFrom(100, 250, 1000),
      fc.array(fc.integer({ min: 1, max: 60_000 }), { minLength: 1, maxLength: 30 }), // gaps between renewals
      fc.double({ min: 0, max: 1, noNaN: true }),
      (interval, duration, hz, gaps, pos) => {
        const k = new SimKernel(hz);
        const t = tuple(40000);
        const renewals: number[] = [];
        let at = 0;
        k.renew(key(t), 0);
        for (const g of gaps) renewals.push(at += g);
        const tracker = new RenewalTracker({ threshold: 1_000_000 });
        let counted = 0, next = 0, firstSeen: number | undefined;
        for (let start = 0; start < at + 5000; start += interval) {
          while (next < renewals.length && renewals[next] <= start) {
            k.renew(key(t), renewals[next++]);
          }
          firstSeen ??= start;
          const r = tracker.observe(snapshot(k, [t], start, duration, () => pos));
          counted += r.renewals;
          const real = renewals.filter((x) => x > firstSeen! && x <= start + duration).length;
          assert.ok(counted <= real, `counted ${counted} > real ${real} at t=${start}`);
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("RenewalTracker finds an entry renewed every second at 1 s polling within 12 s, for threshold 3", () => {
  for (const hz of [100, 250, 1000]) {
    for (let phase = 0; phase < 1000; phase += 50) {
      for (const duration of [1, 20, 150]) {
        const k = new SimKernel(hz);
        const renewed = tuple(1), decaying = tuple(2);
        k.renew(key(renewed), 0);
        k.renew(key(decaying), 0);
        const tracker = new RenewalTracker({ threshold: 3 });
        let staleAt: number | undefined;
        for (let s = 0; s <= 12 && staleAt === undefined; s++) {
          const start = 1000 + phase + s * 1000;
          // the client retries every second; the poll lands somewhere in between
          for (let r = 1000; r <= start; r += 1000) k.renew(key(renewed), r);
          const res = tracker.observe(snapshot(k, [renewed, decaying], start, duration, () => 0.5));
          assert.ok(res.stale.every((d) => d.tuple.sport === 1), "only the renewed entry");
          if (res.stale.length > 0) staleAt = s;
        }
        assert.ok(
          staleAt !== undefined && staleAt <= 11,
          `hz=${hz} phase=${phase} dur=${duration}: ${staleAt}`,
        );
      }
    }
  }
});

Deno.test("RenewalTracker reports stale only after MORE than threshold renewals", () => {
  const tracker = new RenewalTracker({ threshold: 2, marginMs: 0 });
  const t = tuple(5);
  const snap = (at: number, timeout: number): Snapshot => ({
    candidates: [{ ...t, timeout, seenFrom: at, seenTo: at }],
    scanned: 1,
    malformed: 0,
    startedAt: at,
    finishedAt: at,
  });
  assert.equal(tracker.observe(snap(0, 100)).stale.length, 0); // first sight
  assert.equal(tracker.observe(snap(1000, 110)).renewals, 1);
  assert.equal(tracker.observe(snap(2000, 120)).renewals, 1);
  assert.equal(tracker.observe(snap(3000, 119)).stale.length, 0, "2 renewals = threshold: not yet");
  const r = tracker.observe(snap(4000, 130));
  assert.equal(r.stale.length, 1);
  assert.equal(r.stale[0].renewals, 3);
  assert.equal(r.stale[0].trackedMs, 4000);
});

Deno.test("RenewalTracker forgets tuples that vanish, and forget() restarts a tuple from zero", () => {
  const tracker = new RenewalTracker({ threshold: 0, marginMs: 0 });
  const a = tuple(1), b = tuple(2);
  const snap = (at: number, ts: [Tuple, number][]): Snapshot => ({
    candidates: ts.map(([t, timeout]) => ({ ...t, timeout, seenFrom: at, seenTo: at })),
    scanned: ts.length,
    malformed: 0,
    startedAt: at,
    finishedAt: at,
  });
  tracker.observe(snap(0, [[a, 100], [b, 100]]));
  assert.equal(tracker.size, 2);
  let r = tracker.observe(snap(1000, [[a, 110]]));
  assert.equal(r.forgotten, 1);
  assert.equal(r.tracked, 1);
  assert.equal(r.stale.length, 1);
  tracker.forget(a);
  assert.equal(tracker.size, 0);
  r = tracker.observe(snap(2000, [[a, 120], [b, 120]]));
  assert.equal(r.stale.length, 0, "both start again from first sight");
  assert.equal(r.tracked, 2);
});

Deno.test("RenewalTracker counts at most one renewal per snapshot, even for a tuple listed twice", () => {
  const tracker = new RenewalTracker({ threshold: 10, marginMs: 0 });
  const t = tuple(9);
  tracker.observe({
    candidates: [{ ...t, timeout: 10, seenFrom: 0, seenTo: 0 }],
    scanned: 1,
    malformed: 0,
    startedAt: 0,
    finishedAt: 0,
  });
  const r = tracker.observe({
    candidates: [
      { ...t, timeout: 50, seenFrom: 1000, seenTo: 1000 },
      { ...t, timeout: 90, seenFrom: 1000, seenTo: 1000 },
    ],
    scanned: 2,
    malformed: 0,
    startedAt: 1000,
    finishedAt: 1000,
  });
  assert.equal(r.renewals, 1);
});

Deno.test("RenewalTracker treats a new kernel id for the same tuple as a new entry", () => {
  const tracker = new RenewalTracker({ threshold: 0, marginMs: 0 });
  const t = tuple(3);
  const snap = (at: number, timeout: number, id: number): Snapshot => ({
    candidates: [{ ...t, timeout, seenFrom: at, seenTo: at, id }],
    scanned: 1,
    malformed: 0,
    startedAt: at,
    finishedAt: at,
  });
  tracker.observe(snap(0, 100, 7));
  const r = tracker.observe(snap(1000, 119, 8));
  assert.equal(r.renewals, 0);
  assert.equal(r.stale.length, 0);
  const r2 = tracker.observe(snap(2000, 119, 8));
  assert.equal(r2.renewals, 1);
  assert.equal(r2.stale[0].id, 8);
});

Deno.test("RenewalTracker rejects a negative or fractional threshold", () => {
  assert.throws(() => new RenewalTracker({ threshold: -1 }), RangeError);
  assert.throws(() => new RenewalTracker({ threshold: 1.5 }), RangeError);
});
