/**
 * The sample tuple the tests share: 10.0.0.1:40000 → 10.0.0.2:80, zone 0,
 * and variations of it.
 *
 * @module
 */
import type { Tuple } from "../../lib/model/tuple.ts";

/** 10.0.0.1:40000 → 10.0.0.2:80 over IPv4, zone 0. */
export const SAMPLE_TUPLE: Readonly<Tuple> = Object.freeze({
  family: "ipv4",
  src: "10.0.0.1",
  dst: "10.0.0.2",
  sport: 40000,
  dport: 80,
  zone: 0,
});

/** The sample tuple with some fields changed. */
export function sampleTuple(changes: Partial<Tuple> = {}): Tuple {
  return { ...SAMPLE_TUPLE, ...changes };
}
