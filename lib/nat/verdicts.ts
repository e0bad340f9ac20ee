/**
 * One poll's questions to the node's NAT rules: for each candidate entry,
 * would the client's next SYN be destination-NATed, and to what? The hook
 * comes from the socket table ({@linkcode chooseHooks}); with two hooks
 * both must answer "translated", and the targets are the union. The rules
 * themselves are read and evaluated behind {@linkcode NatAsker}.
 *
 * Three verdicts, and only the first lets a rule delete:
 * - `translated`: every path through the rules ends in a DNAT/REDIRECT to
 *   one of `targets`, none the original destination;
 * - `not_proven`: the rules were read and do not prove it (keep the entry;
 *   no other source of knowledge may overrule the rules);
 * - `unreadable`: the rules could not be read or trusted here (legacy
 *   iptables nat, IPVS, a read error, a bound): the rules decide nothing,
 *   and the older providers decide as before.
 *
 * @example
 * ```ts
 * import { NatVerdicts } from "./verdicts.ts";
 * const verdicts = new NatVerdicts({
 *   sockets: { hasSocket: () => Promise.resolve(false), close() {} },
 *   isLocalAddress: () => false,
 *   asker: {
 *     ask: (qs) => Promise.resolve(qs.map(() => ({ kind: "not_proven" as const, reason: "no rule" }))),
 *   },
 * });
 * const c = { family: "ipv4" as const, src: "192.0.2.7", dst: "198.51.100.80", sport: 40000, dport: 80, zone: 0 };
 * const [v] = await verdicts.judge([c]);
 * v; // => { kind: "not_proven", reason: "prerouting: no rule" }
 * ```
 *
 * @module
 */
import { addressBytes } from "../model/addr.ts";
import type { Tuple } from "../model/tuple.ts";
import { chooseHooks, type SocketTable } from "./hooks.ts";
import type { NatAnswer, NatHook, NatQuestion, TargetRange } from "./ruleset.ts";

/** The rules could not be read or trusted for this question, and why. */
export interface Unreadable {
  readonly kind: "unreadable";
  readonly reason: string;
}

/** What the rules say of one candidate's next SYN. */
export type NatVerdict =
  | {
    readonly kind: "translated";
    readonly targets: readonly TargetRange[];
    readonly hooks: readonly NatHook[];
  }
  | { readonly kind: "not_proven"; readonly reason: string }
  | Unreadable;

/** Reads and evaluates the rules for a batch of questions (never answers `need`). */
export interface NatAsker {
  ask(questions: readonly NatQuestion[]): Promise<readonly (NatAnswer | Unreadable)[]>;
}

/** What {@linkcode NatVerdicts} is built from. */
export interface NatVerdictsOptions {
  sockets: SocketTable;
  /** Whether `address` (canonical text) is one of this namespace's own addresses. */
  isLocalAddress(family: Tuple["family"], address: string): boolean;
  asker: NatAsker;
}

/** What {@linkcode NatVerdicts} has done so far, for the metrics. */
export interface NatVerdictStats {
  /** Verdicts given, by kind. */
  verdicts: Record<NatVerdict["kind"], number>;
  /** Batches judged (polls that asked). */
  batches: number;
  /** Seconds spent judging, all batches together. */
  seconds: number;
}

/** Judges candidates against the node's NAT rules, one batch per poll. */
export class NatVerdicts {
  #o: NatVerdictsOptions;
  readonly stats: NatVerdictStats = {
    verdicts: { translated: 0, not_proven: 0, unreadable: 0 },
    batches: 0,
    seconds: 0,
  };

  constructor(o: NatVerdictsOptions) {
    this.#o = o;
  }

  /** The verdict for each tuple, in order. Never rejects: a failure is `unreadable`. */
  async judge(tuples: readonly Tuple[]): Promise<NatVerdict[]> {
    const t0 = performance.now();
    const out = await this.#judge(tuples);
    this.stats.batches++;
    this.stats.seconds += (performance.now() - t0) / 1000;
    for (const v of out) this.stats.verdicts[v.kind]++;
    return out;
  }

  async #judge(tuples: readonly Tuple[]): Promise<NatVerdict[]> {
    const plans: { hooks: NatHook[]; first: number }[] = [];
    const questions: NatQuestion[] = [];
    const out: (NatVerdict | undefined)[] = [];
    for (const t of tuples) {
      const src = addressBytes(t.family, t.src);
      const dst = addressBytes(t.family, t.dst);
      if (src === undefined || dst === undefined) {
        out.push({ kind: "unreadable", reason: `not an address pair: ${t.src} → ${t.dst}` });
        plans.push({ hooks: [], first: -1 });
        continue;
      }
      let localSocket: boolean;
      try {
        localSocket = await this.#o.sockets.hasSocket({ ...t, src, dst });
      } catch (e) {
        out.push({ kind: "unreadable", reason: `socket table: ${(e as Error).message}` });
        plans.push({ hooks: [], first: -1 });
        continue;
      }
      const hooks = chooseHooks({
        localSocket,
        localSource: this.#o.isLocalAddress(t.family, t.src),
      });
      plans.push({ hooks, first: questions.length });
      out.push(undefined);
      for (const hook of hooks) {
        questions.push({ ...t, src, dst, hook });
      }
    }
    let answers: readonly (NatAnswer | Unreadable)[] = [];
    if (questions.length > 0) {
      try {
        answers = await this.#o.asker.ask(questions);
      } catch (e) {
        const reason = `rules: ${(e as Error).message}`;
        return out.map((v) => v ?? { kind: "unreadable", reason });
      }
    }
    return out.map((v, i) => {
      if (v !== undefined) return v;
      const plan = plans[i]!;
      return combine(plan.hooks, plan.hooks.map((_, k) => answers[plan.first + k]));
    });
  }
}

/**
 * One verdict from the answers of each hook: translated only when every
 * hook's answer is (targets united); the first other answer otherwise.
 *
 * @example
 * ```ts
 * import { combine } from "./verdicts.ts";
 * const t = { addrMin: new Uint8Array([10, 0, 0, 1]), addrMax: new Uint8Array([10, 0, 0, 1]), portMin: 80, portMax: 80 };
 * combine(["prerouting", "output"], [{ kind: "translated", targets: [t] }, { kind: "not_proven", reason: "no rule" }]);
 * // => { kind: "not_proven", reason: "output: no rule" }
 * combine(["output"], [{ kind: "translated", targets: [t] }]).kind; // => "translated"
 * ```
 */
export function combine(
  hooks: readonly NatHook[],
  answers: readonly (NatAnswer | Unreadable | undefined)[],
): NatVerdict {
  const targets: TargetRange[] = [];
  for (let k = 0; k < hooks.length; k++) {
    const a = answers[k];
    const hook = hooks[k];
    if (a === undefined) return { kind: "unreadable", reason: `${hook}: no answer` };
    if (a.kind === "unreadable") return { kind: "unreadable", reason: `${hook}: ${a.reason}` };
    if (a.kind === "need") return { kind: "unreadable", reason: `${hook}: rules not fully read` };
    if (a.kind === "not_proven") return { kind: "not_proven", reason: `${hook}: ${a.reason}` };
    targets.push(...a.targets);
  }
  if (hooks.length === 0) return { kind: "unreadable", reason: "no hook" };
  return { kind: "translated", targets, hooks };
}
