import assert from "node:assert/strict";
import fc from "fast-check";
import type { Candidate, Snapshot } from "../../lib/model/snapshot.ts";
import type { Tuple } from "../../lib/model/tuple.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";

/**
 * A simulated kernel: entries with an expiry in jiffies, printed the way
 * ct_seq_show() prints them (whole seconds left, rounded down), read by a
 * snapshot that takes time, each line formatted at its own moment.
 *
 * jiffies advance only at the timer tick (and an idle tickless CPU catches
 * up late), so a line may be formatted with a jiffies value that lags real
 * time: `lagMs` per line, up to two ticks in the properties below.
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
  printed(key: string, tMs: number, lagMs = 0): number | undefined {
    const left = this.expires.get(key)! - this.jiffies(tMs - lagMs);
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

/** How one poll reads the table: each varies poll by poll. */
interface PollShape {
  /** Snapshot duration, ms. */
  duration: number;
  /** Where inside the snapshot window each line is formatted, 0..1 (per line). */
  positions: number[];
  /** How far the kernel's jiffies lag real time when each line is formatted, in ticks 0..2. */
  lags: number[];
  /** Extra delay before the next poll, ms (the agent's timer firing late). */
  late: number;
}

/**
 * One snapshot from `start`, lasting `shape.duration`; line `i` formatted at
 * `start + positions[i] · duration` with jiffies `lags[i]` ticks behind.
 * `before(t)` runs first for each line, so renewals up to the line's own
 * moment are applied (a renewal can land inside the snapshot window).
 */
function snapshot(
  k: SimKernel,
  tuples: Tuple[],
  start: number,
  shape: PollShape,
  before: (t: number) => void = () => {},
): Snapshot {
  const candidates: Candidate[] = [];
  tuples.forEach((t, i) => {
    const at = start + shape.positions[i % shape.positions.length]! * shape.duration;
    before(at);
    const lagMs = (shape.lags[i % shape.lags.length]! * 1000) / k.hz;
    const printed = k.printed(key(t), at, lagMs);
    if (printed !== undefined) {
      candidates.push({
        ...t,
        timeout: printed,
        seenFrom: start,
        seenTo: start + shape.duration,
      });
    }
  });
  return {
    candidates,
    scanned: tuples.length,
    malformed: 0,
    startedAt: start,
    finishedAt: start + shape.duration,
  };
}

/** A position in the window, with its ends (the worst cases) drawn often. */
const position = fc.oneof(
  fc.constantFrom(0, 1),
  fc.double({ min: 0, max: 1, noNaN: true }),
);
/** Jiffies lag in ticks, with 0 and the two-tick maximum drawn often. */
const lag = fc.oneof(fc.constantFrom(0, 2), fc.double({ min: 0, max: 2, noNaN: true }));

/**
 * A poll's shape for `lines` lines: durations from 0 to 1.5 s, some
 * polls far longer than any interval (up to 200 s, a stalled read).
 */
const pollShape = (lines: number): fc.Arbitrary<PollShape> =>
  fc.record({
    duration: fc.oneof(
      fc.constantFrom(0, 1, 999, 1000, 1001, 1500),
      fc.integer({ min: 0, max: 1500 }),
      fc.integer({ min: 1500, max: 200_000 }),
    ),
    positions: fc.array(position, { minLength: lines, maxLength: lines }),
    lags: fc.array(lag, { minLength: lines, maxLength: lines }),
    late: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5000 })),
  });

/**
 * Start of each poll: `interval` after the previous start, or when the
 * previous one finished if it took longer (polls never overlap), plus its
 * own lateness.
 */
function starts(first: number, interval: number, shapes: PollShape[]): number[] {
  const out: number[] = [];
  let at = first;
  for (const s of shapes) {
    out.push(at);
    at = Math.max(at + interval, at + s.duration) + s.late;
  }
  return out;
}

Deno.test("RenewalTracker never counts a renewal for entries that are not renewed (positions, durations, lag vary poll by poll; any interval, phase, HZ)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }).chain((lines) =>
        fc.record({
          lines: fc.constant(lines),
          interval: fc.oneof(
            fc.constantFrom(100, 1000),
            fc.integer({ min: 100, max: 180_000 }),
          ),
          phaseUs: fc.integer({ min: 0, max: 999_999 }),
          hz: fc.constantFrom(100, 250, 300, 1000),
          polls: fc.array(pollShape(lines), { minLength: 3, maxLength: 25 }),
        })
      ),
      ({ lines, interval, phaseUs, hz, polls }) => {
        const k = new SimKernel(hz);
        const tuples = Array.from({ length: lines }, (_, i) => tuple(1000 + i));
        const at = starts(5000 + phaseUs / 1000, interval, polls);
        const end = at[at.length - 1]! + polls[polls.length - 1]!.duration;
        // created once (long enough to outlive every poll), then left alone
        const seconds = Math.ceil(end / 1000) + 120;
        tuples.forEach((t, i) => k.renew(key(t), i * 37, seconds));
        const tracker = new RenewalTracker({ threshold: 0 });
        polls.forEach((shape, n) => {
          const r = tracker.observe(snapshot(k, tuples, at[n]!, shape));
          assert.equal(r.tracked, lines, "every entry is still there");
          assert.equal(r.renewals, 0, `false renewal at poll ${n} (t=${at[n]})`);
          assert.deepEqual(r.stale, []);
        });
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("RenewalTracker never counts more renewals than really happened (positions, durations, lag vary poll by poll)", () => {
  fc.assert(
    fc.property(
      fc.record({
        interval: fc.oneof(fc.constantFrom(100, 1000), fc.integer({ min: 100, max: 10_000 })),
        hz: fc.constantFrom(100, 250, 300, 1000),
        phaseUs: fc.integer({ min: 0, max: 999_999 }),
        // gaps between renewals, ms
        gaps: fc.array(fc.integer({ min: 1, max: 60_000 }), { minLength: 1, maxLength: 30 }),
        polls: fc.array(pollShape(1), { minLength: 3, maxLength: 60 }),
      }),
      ({ interval, hz, phaseUs, gaps, polls }) => {
        const k = new SimKernel(hz);
        const t = tuple(40000);
        const renewals: number[] = [];
        let at = 0;
        k.renew(key(t), 0);
        for (const g of gaps) renewals.push(at += g);
        const tracker = new RenewalTracker({ threshold: 1_000_000 });
        let counted = 0, next = 0, firstSeen: number | undefined;
        const begin = starts(phaseUs / 1000, interval, polls);
        polls.forEach((shape, n) => {
          const start = begin[n]!;
          const renewTo = (until: number) => {
            while (next < renewals.length && renewals[next]! <= until) {
              k.renew(key(t), renewals[next++]!);
            }
          };
          const snap = snapshot(k, [t], start, shape, renewTo);
          if (snap.candidates.length === 0) {
            // expired (a gap of more than 120 s): a later sight is a new entry
            firstSeen = undefined;
            tracker.observe(snap);
            return;
          }
          firstSeen ??= start;
          const r = tracker.observe(snap);
          counted += r.renewals;
          const real = renewals.filter((x) =>
            x > firstSeen! && x <= start! + shape.duration
          ).length;
          assert.ok(counted <= real, `counted ${counted} > real ${real} at poll ${n} (t=${start})`);
        });
      },
    ),
    { numRuns: 400 },
  );
});

/**
 * The model for an entry renewed at every whole second, polled every
 * second with a fixed phase, duration and line position: each poll sees the
 * deadline exactly 1 s later than the one before, and every observation
 * spans `1000 + duration + 2·margin` ms. A renewal is certain once the new
 * interval starts after the reference one ends, i.e. every
 * `k = ceil((1000 + duration + 2·margin) / 1000)` polls; with threshold T
 * the entry is stale at poll `(T + 1)·k` (the first poll is poll 0).
 */
const predictedPoll = (threshold: number, duration: number, margin: number) =>
  (threshold + 1) * Math.ceil((1000 + duration + 2 * margin) / 1000);

Deno.test("RenewalTracker finds an entry renewed every second at 1 s polls after exactly the number of polls the model predicts", () => {
  let checked = 0;
  for (const hz of [100, 250, 300, 1000]) {
    for (const phase of [0, 1, 50, 333, 500, 999]) {
      for (const duration of [0, 1, 20, 150, 899, 900, 901, 950, 1000]) {
        for (const pos of [0, 0.5, 1]) {
          for (const [threshold, margin] of [[3, undefined], [3, 0], [0, 50], [5, 10]] as const) {
            const k = new SimKernel(hz);
            const renewed = tuple(1), decaying = tuple(2);
            k.renew(key(renewed), 0);
            k.renew(key(decaying), 0);
            const tracker = new RenewalTracker({
              threshold,
              ...(margin === undefined ? {} : { marginMs: margin }),
            });
            const expected = predictedPoll(threshold, duration, margin ?? 50);
            let staleAt: number | undefined;
            let lastRenewal = 0;
            const shape: PollShape = { duration, positions: [pos], lags: [0], late: 0 };
            // the client retries at every whole second; a renewal can land inside a snapshot
            const renewTo = (t: number) => {
              for (let r = lastRenewal + 1000; r <= t; r += 1000) {
                k.renew(key(renewed), r);
                lastRenewal = r;
              }
            };
            for (let s = 0; s <= expected + 2 && staleAt === undefined; s++) {
              const start = 1000 + phase + s * 1000;
              const res = tracker.observe(
                snapshot(k, [renewed, decaying], start, shape, renewTo),
              );
              assert.ok(res.stale.every((d) => d.tuple.sport === 1), "only the renewed entry");
              if (res.stale.length > 0) {
                staleAt = s;
                assert.equal(res.stale[0]!.renewals, threshold + 1);
              }
            }
            assert.equal(
              staleAt,
              expected,
              `hz=${hz} phase=${phase} dur=${duration} pos=${pos} threshold=${threshold} margin=${margin}`,
            );
            checked++;
          }
        }
      }
    }
  }
  assert.equal(checked, 4 * 6 * 9 * 3 * 4);
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
  assert.equal(r.stale[0]!.renewals, 3);
  assert.equal(r.stale[0]!.trackedMs, 4000);
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
  assert.equal(r2.stale[0]!.id, 8);
});

Deno.test("RenewalTracker rejects a negative or fractional threshold", () => {
  assert.throws(() => new RenewalTracker({ threshold: -1 }), RangeError);
  assert.throws(() => new RenewalTracker({ threshold: 1.5 }), RangeError);
});
