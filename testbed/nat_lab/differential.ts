/**
 * The differential test of the NAT evaluator against the kernel: for each
 * seed, load the generated rule set in the lab (`lab.ts`), ask the answer
 * function about every probe, send the probes, and judge each answer by
 * what conntrack recorded.
 *
 * The rule: "not proven" is always allowed; "translated to T" is allowed
 * only when the kernel created an entry for the SYN and translated it to an
 * (address, port) inside T, and T never contains the original destination
 * and port (the answer's own contract). Anything else is a
 * {@linkcode Disagreement}, printed with the seed, the rule set and both
 * results so it can be replayed (`deno task test:nat-diff --seed N`).
 *
 * All answers for a rule set are asked before its first SYN is sent, as the
 * agent answers before a client's next SYN: packet-path state (dynamic sets,
 * `numgen inc`, `statistic nth`) changes under the answer, which a sound
 * evaluator must allow for.
 *
 * @module
 */
import { addressBytes, formatAddress } from "../../lib/model/addr.ts";
import type { NatAnswer, NatQuestion, TargetRange } from "../../lib/nat/ruleset.ts";
import { describeCase, generateCase, type NatCase } from "./generate.ts";
import type { NatLab, Observation, Probe } from "./lab.ts";

/** The evaluator under test: reader + evaluator, answering about one probe of one case. */
export type AnswerFn = (q: NatQuestion, c: NatCase) => Promise<NatAnswer>;

/** How the answer function is made for a lab (e.g. opening a reader's socket with `lab.inNode`). */
export type AnswerFactory = (lab: NatLab) => AnswerFn;

function bytes(a: string): Uint8Array {
  const b = addressBytes(a.includes(":") ? "ipv6" : "ipv4", a);
  if (b === undefined) throw new Error(`bad address ${a}`);
  return b;
}

/** The question a probe asks (zone 0). */
export function questionOf(p: Probe): NatQuestion {
  return {
    family: p.src.includes(":") ? "ipv6" : "ipv4",
    src: bytes(p.src),
    dst: bytes(p.dst),
    sport: p.sport,
    dport: p.dport,
    zone: 0,
    hook: p.hook,
  };
}

function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** Whether `addr`:`port` lies in one of `targets`. */
export function inTargets(targets: readonly TargetRange[], addr: string, port: number): boolean {
  const a = bytes(addr);
  return targets.some((t) =>
    cmpBytes(t.addrMin, a) <= 0 && cmpBytes(a, t.addrMax) <= 0 && t.portMin <= port &&
    port <= t.portMax
  );
}

/** Whether the kernel translated the probe: an entry with `IPS_DST_NAT` to somewhere else. */
export function kernelTranslated(p: Probe, o: Observation): boolean {
  return o.kind === "entry" && o.dnat &&
    !(cmpBytes(bytes(o.addr), bytes(p.dst)) === 0 && o.port === p.dport);
}

/** One probe's verdict. */
export type Judgement =
  | { kind: "agree" }
  | { kind: "not_proven"; kernelTranslated: boolean }
  | { kind: "disagree"; why: string };

/** Judges one answer by the kernel's observation (see the module doc). */
export function judge(p: Probe, answer: NatAnswer, o: Observation): Judgement {
  if (answer.kind === "not_proven") {
    return { kind: "not_proven", kernelTranslated: kernelTranslated(p, o) };
  }
  if (answer.kind === "need") {
    return {
      kind: "disagree",
      why: "the answer function returned `need` (the reader must resolve it)",
    };
  }
  if (answer.targets.length === 0) return { kind: "disagree", why: "translated to an empty T" };
  if (inTargets(answer.targets, p.dst, p.dport)) {
    return { kind: "disagree", why: "T contains the original destination and port" };
  }
  if (o.kind !== "entry") {
    return { kind: "disagree", why: `translated, but the kernel created no entry (${o.kind})` };
  }
  if (!inTargets(answer.targets, o.addr, o.port)) {
    return {
      kind: "disagree",
      why: o.dnat
        ? `the kernel translated to ${o.addr}:${o.port}, outside T`
        : "the kernel did not translate",
    };
  }
  return { kind: "agree" };
}

/** A disagreement, with everything needed to replay it. */
export interface Disagreement {
  seed: number;
  case: NatCase;
  probe: Probe;
  observation: Observation;
  answer: NatAnswer;
  why: string;
}

/** Totals of a run. */
export interface DiffStats {
  ruleSets: number;
  probes: number;
  /** Probes the kernel translated (to somewhere other than their destination). */
  kernelTranslated: number;
  /** Answers `translated` (each one agreed or is a disagreement). */
  answeredTranslated: number;
  /** Answers `not proven` where the kernel translated: the evaluator's imprecision. */
  notProvenKernelTranslated: number;
  /** Every disagreeing probe. */
  disagreeing: number;
  /** The first ones in full (up to `maxDisagreements`). */
  disagreements: Disagreement[];
  ms: number;
}

function printable(x: unknown): string {
  return JSON.stringify(
    x,
    (_k, v) =>
      v instanceof Uint8Array ? (v.length === 4 || v.length === 16 ? formatAddress(v) : [...v]) : v,
  );
}

/** A disagreement as text: seed, probe, both results, the rule set. */
export function formatDisagreement(d: Disagreement): string {
  return [
    `DISAGREEMENT (replay: deno task test:nat-diff --seed ${d.seed}): ${d.why}`,
    `probe: ${printable(d.probe)}`,
    `kernel: ${printable(d.observation)}`,
    `answer: ${printable(d.answer)}`,
    describeCase(d.case),
  ].join("\n");
}

/** One line of totals, with the precision figure. */
export function formatStats(s: DiffStats): string {
  const rate = s.kernelTranslated === 0
    ? "n/a"
    : `${(100 * s.notProvenKernelTranslated / s.kernelTranslated).toFixed(1)}%`;
  return `${s.ruleSets} rule sets, ${s.probes} probes in ${(s.ms / 1000).toFixed(1)} s: ` +
    `kernel translated ${s.kernelTranslated}, answered translated ${s.answeredTranslated}, ` +
    `not proven where the kernel translated ${s.notProvenKernelTranslated} (${rate}), ` +
    `${s.disagreeing} disagreement(s)`;
}

/**
 * Runs the cases of `seeds` in `lab` against `answer`. Stops collecting
 * after `maxDisagreements` (default 20) but counts every probe.
 */
export async function runDifferential(
  lab: NatLab,
  seeds: Iterable<number>,
  answer: AnswerFn,
  options: {
    maxDisagreements?: number;
    onCase?: (c: NatCase, obs: Observation[], answers: NatAnswer[]) => void;
  } = {},
): Promise<DiffStats> {
  const t0 = performance.now();
  const s: DiffStats = {
    ruleSets: 0,
    probes: 0,
    kernelTranslated: 0,
    answeredTranslated: 0,
    notProvenKernelTranslated: 0,
    disagreeing: 0,
    disagreements: [],
    ms: 0,
  };
  for (const seed of seeds) {
    const c = generateCase(seed);
    await lab.load(c.load);
    const answers: NatAnswer[] = [];
    for (const p of c.probes) answers.push(await answer(questionOf(p), c));
    const obs = await lab.probe(c.probes);
    options.onCase?.(c, obs, answers);
    s.ruleSets++;
    c.probes.forEach((p, i) => {
      const a = answers[i]!, o = obs[i]!;
      s.probes++;
      if (kernelTranslated(p, o)) s.kernelTranslated++;
      if (a.kind === "translated") s.answeredTranslated++;
      const j = judge(p, a, o);
      if (j.kind === "not_proven" && j.kernelTranslated) s.notProvenKernelTranslated++;
      if (j.kind !== "disagree") return;
      s.disagreeing++;
      if (s.disagreements.length < (options.maxDisagreements ?? 20)) {
        s.disagreements.push({ seed, case: c, probe: p, observation: o, answer: a, why: j.why });
      }
    });
  }
  s.ms = performance.now() - t0;
  return s;
}
