/**
 * `NftRules`: answers a batch of NAT questions from the kernel's own rules,
 * reading only what the questions reach. Per batch: the legacy-iptables and
 * IPVS checks (`host_checks.ts`), the nf_tables generation id, then for each
 * question the base chains at its hook (with their rules), and a loop — the
 * evaluator answers, or says what it `need`s (chains, sets), which is read
 * and the evaluator asked again (bounded rounds). What was read is kept
 * while the generation holds and reused by the next batch; the generation is
 * read again after the batch, and a change (or an interrupted dump) means
 * the batch is read once more from scratch, twice means "unreadable".
 * Rules are decoded only as far as the batch's questions need
 * (`nft_prefilter.ts`), and anonymous constant sets are kept across
 * generations (`nft_constant_sets.ts`).
 *
 * The evaluator comes in as an option (the agent passes `evaluate` of
 * `./evaluate.ts`), so this module does not depend on it.
 *
 * @example
 * ```ts ignore
 * // ignore: needs CAP_NET_ADMIN and an evaluator.
 * import { NftRules } from "./nft_reader.ts";
 * import { evaluate } from "./evaluate.ts";
 * const rules = new NftRules({ evaluate });
 * const [answer] = await rules.answer([{
 *   family: "ipv4", src: new Uint8Array([10, 0, 0, 5]), dst: new Uint8Array([10, 96, 0, 10]),
 *   sport: 40000, dport: 80, zone: 0, hook: "prerouting",
 * }]);
 * rules.close();
 * ```
 *
 * @module
 */
import { DumpRetryError } from "../netlink/dump.ts";
import { NetlinkSocket, type NetlinkTransport } from "../netlink/socket.ts";
import { type HostNat, ipvsMayServe, readHostNat } from "./host_checks.ts";
import { NftDecodeError } from "./nft_attrs.ts";
import {
  DEFAULT_BOUNDS,
  type NftBounds,
  NftBoundsError,
  NftFetcher,
  NftMissingError,
} from "./nft_fetch.ts";
import { ConstantSets } from "./nft_constant_sets.ts";
import { Prefilter } from "./nft_prefilter.ts";
import { LoadedView, type Named } from "./nft_view.ts";
import type { NatAnswer, NatQuestion, NftHook, RulesetView } from "./ruleset.ts";

/** The evaluator's signature (`evaluate.ts`). */
export type Evaluate = (q: NatQuestion, view: RulesetView) => NatAnswer;

/** An answer of the reader: the evaluator's final answer, or why the rules could not be read. */
export type RulesAnswer =
  | Exclude<NatAnswer, { kind: "need" }>
  | { readonly kind: "unreadable"; readonly reason: string };

/** Options of {@linkcode NftRules}. */
export interface NftRulesOptions {
  evaluate: Evaluate;
  /** Opens the netlink socket (default: a `NETLINK_NETFILTER` socket in this namespace). */
  open?: () => NetlinkTransport;
  bounds?: NftBounds;
  /** Evaluator rounds per question before giving up (default 64). */
  maxRounds?: number;
  /** Where `net/ip_tables_names`, `net/ip6_tables_names` and `net/ip_vs` are (default `/proc`). */
  procRoot?: string;
  /** Reads the host checks (default: from `procRoot`). */
  hostNat?: () => Promise<HostNat>;
}

/** What went wrong in a read that a fresh read may not have (the ruleset moved under it). */
class Moved extends Error {}

/** See the module doc. */
export class NftRules {
  #o: NftRulesOptions;
  #t: NetlinkTransport | undefined;
  #view: LoadedView | undefined;
  #fetcher: NftFetcher | undefined;
  #constants = new ConstantSets();
  /** Figures of the last batch, for logs and benchmarks. */
  lastRead = {
    generation: 0,
    reused: false,
    rules: 0,
    elements: 0,
    /** Rules read only up to comparisons that rule out every question (`nft_prefilter.ts`). */
    elided: 0,
    /** Anonymous constant sets taken from an earlier generation (`nft_constant_sets.ts`). */
    reusedSets: 0,
    bytes: 0,
    attempts: 0,
  };

  constructor(options: NftRulesOptions) {
    this.#o = options;
  }

  /** Answers every question, in order; reads nothing for an empty batch. */
  async answer(questions: readonly NatQuestion[]): Promise<RulesAnswer[]> {
    if (questions.length === 0) return [];
    try {
      return await this.#answer(questions);
    } finally {
      this.#constants.endBatch();
    }
  }

  async #answer(questions: readonly NatQuestion[]): Promise<RulesAnswer[]> {
    const host = await (this.#o.hostNat ?? (() => readHostNat(this.#o.procRoot)))();
    for (let attempt = 1;; attempt++) {
      try {
        const answers = await this.#batch(questions, host);
        this.lastRead.attempts = attempt;
        return answers;
      } catch (e) {
        this.#view = undefined;
        this.#fetcher = undefined;
        this.close(); // a socket left mid-dump would answer the next request with old data
        if (e instanceof Moved && attempt < 2) continue;
        const reason = e instanceof Moved
          ? `the ruleset changed during the read twice (${e.message})`
          : describe(e);
        return questions.map(() => ({ kind: "unreadable", reason }));
      }
    }
  }

  /** Closes the socket; the next batch opens another. */
  close(): void {
    this.#t?.close();
    this.#t = undefined;
  }

  #transport(): NetlinkTransport {
    this.#t ??= (this.#o.open ?? (() => NetlinkSocket.open()))();
    return this.#t;
  }

  async #batch(questions: readonly NatQuestion[], host: HostNat): Promise<RulesAnswer[]> {
    const t = this.#transport();
    const probe = new NftFetcher(t, this.#o.bounds ?? DEFAULT_BOUNDS);
    const generation = await probe.generation();
    const reused = this.#view?.generation === generation;
    if (!reused) {
      this.#fetcher = new NftFetcher(t, this.#o.bounds ?? DEFAULT_BOUNDS);
      this.#fetcher.constants = this.#constants;
      this.#view = new LoadedView(generation, await this.#fetcher.dormantTables());
    }
    const view = this.#view!;
    const fetcher = this.#fetcher!;
    const prefilter = new Prefilter(questions);
    view.useKeys(prefilter.keys);
    fetcher.prefilter = prefilter;
    const answers: RulesAnswer[] = [];
    for (const q of questions) answers.push(await this.#one(q, host, view, fetcher));
    const after = await probe.generation();
    if (after !== generation) throw new Moved(`generation ${generation} → ${after}`);
    this.lastRead = {
      generation,
      reused,
      rules: fetcher.rules,
      elements: fetcher.elements,
      elided: fetcher.elided,
      reusedSets: fetcher.reusedSets,
      bytes: fetcher.bytes,
      attempts: 0,
    };
    return answers;
  }

  async #one(
    q: NatQuestion,
    host: HostNat,
    view: LoadedView,
    f: NftFetcher,
  ): Promise<RulesAnswer> {
    if (host.legacyNat[q.family]) {
      const file = q.family === "ipv4" ? "ip_tables_names" : "ip6_tables_names";
      return { kind: "unreadable", reason: `a legacy iptables nat table exists (${file})` };
    }
    if (ipvsMayServe(host.ipvs, q.family, q.dst, q.dport)) {
      return { kind: "unreadable", reason: "an IPVS virtual service may serve this destination" };
    }
    try {
      await this.#loadHook(q.hook, view, f);
      const max = this.#o.maxRounds ?? 64;
      for (let round = 0; round < max; round++) {
        view.takeMisses();
        let a: NatAnswer;
        try {
          a = this.#o.evaluate(q, view);
        } catch (e) {
          return { kind: "unreadable", reason: `the evaluator failed: ${describe(e)}` };
        }
        const misses = view.takeMisses();
        if (a.kind === "need") {
          const loaded = await this.#load(a.chains, a.sets, [], view, f);
          if (!loaded) return { kind: "unreadable", reason: "the evaluator needs what was read" };
          continue;
        }
        // An answer given while something was missing may rest on the gap: read it and ask again.
        if (await this.#load(misses.chains, misses.sets, misses.hooks, view, f)) continue;
        return a;
      }
      return { kind: "unreadable", reason: `no answer after ${max} rounds of reading` };
    } catch (e) {
      if (e instanceof DumpRetryError) throw new Moved(e.message);
      if (e instanceof NftMissingError) {
        // A rule names a chain or set that is not there: a change between reads, or a misread.
        throw new Moved(e.message);
      }
      if (e instanceof NftDecodeError || e instanceof NftBoundsError) {
        return { kind: "unreadable", reason: describe(e) };
      }
      throw e;
    }
  }

  async #loadHook(hook: NftHook, view: LoadedView, f: NftFetcher): Promise<void> {
    if (view.hasHook(hook)) return;
    const heads = await f.baseChains(new Set([hook]));
    const chains = [];
    for (const h of heads) chains.push(await f.baseChain(h));
    view.addHook(hook, chains);
  }

  /** Reads what is not in the view yet; false when everything asked was there already. */
  async #load(
    chains: readonly Named[],
    sets: readonly Named[],
    hooks: readonly NftHook[],
    view: LoadedView,
    f: NftFetcher,
  ): Promise<boolean> {
    let any = false;
    for (const h of hooks) {
      if (view.hasHook(h)) continue;
      await this.#loadHook(h, view, f);
      any = true;
    }
    for (const c of chains) {
      if (view.hasChain(c)) continue;
      view.addChain(await f.chain(c, c.name));
      any = true;
    }
    for (const s of sets) {
      if (view.hasSet(s)) continue;
      view.addSet(await f.set(s, s.name));
      any = true;
    }
    return any;
  }
}

function describe(e: unknown): string {
  if (e instanceof NftBoundsError) return `the rules are too large to read: ${e.message}`;
  if (e instanceof NftDecodeError) return `undecodable nf_tables data: ${e.message}`;
  if (e instanceof Error && e.name === "Error") return e.message;
  return `netlink: ${e instanceof Error ? e.message : String(e)}`;
}
