/**
 * `LoadedView`: the {@linkcode RulesetView} of one nf_tables generation,
 * holding only what was read — the base chains at the hooks loaded (with
 * their rules) and the chains and sets questions reached. A look-up of
 * something not read returns `undefined` and is remembered as a miss, so the
 * loader can read it and ask again even when the evaluator answered without
 * naming it in a `need`.
 *
 * @example
 * ```ts
 * import { LoadedView } from "./nft_view.ts";
 * const view = new LoadedView(7, new Set());
 * view.chain({ family: "ip", table: "nat" }, "KUBE-SERVICES"); // => undefined
 * view.takeMisses().chains.length; // => 1
 * ```
 *
 * @module
 */
import { ELIDED } from "./nft_prefilter.ts";
import type { NftChain, NftHook, NftSet, RulesetView, TableRef } from "./ruleset.ts";

/** A chain or set by table and name. */
export type Named = TableRef & { readonly name: string };

/** The key of a chain or set. */
export function keyOf(x: Named): string {
  return `${x.family}\0${x.table}\0${x.name}`;
}

/** What the evaluator looked for and the view did not have. */
export interface Misses {
  hooks: NftHook[];
  chains: Named[];
  sets: Named[];
}

/** See the module doc. */
export class LoadedView implements RulesetView {
  readonly generation: number;
  /** `family table` of dormant tables: their chains are never offered. */
  readonly #dormant: ReadonlySet<string>;
  readonly #hooks = new Map<NftHook, NftChain[]>();
  readonly #chains = new Map<string, NftChain>();
  readonly #sets = new Map<string, NftSet>();
  #misses: Misses = { hooks: [], chains: [], sets: [] };
  /** Keys of chains holding rules cut short by a prefilter. */
  readonly #elided = new Set<string>();
  /** The question keys (`nft_prefilter.ts`) the cut-short chains were read for. */
  #keys: ReadonlySet<string> = new Set();

  constructor(generation: number, dormant: ReadonlySet<string>) {
    this.generation = generation;
    this.#dormant = dormant;
  }

  /** Whether the base chains at `hook` were loaded. */
  hasHook(hook: NftHook): boolean {
    return this.#hooks.has(hook);
  }

  /** Stores the base chains at `hook` (with rules), in ascending priority. */
  addHook(hook: NftHook, chains: readonly NftChain[]): void {
    const live = chains.filter((c) => !this.#dormant.has(`${c.family} ${c.table}`));
    live.sort((a, b) => (a.base?.priority ?? 0) - (b.base?.priority ?? 0));
    this.#hooks.set(hook, live);
    for (const c of live) this.addChain(c);
  }

  hasChain(x: Named): boolean {
    return this.#chains.has(keyOf(x));
  }

  addChain(c: NftChain): void {
    this.#chains.set(keyOf(c), c);
    if (c.rules.some((r) => r.exprs.at(-1) === ELIDED)) this.#elided.add(keyOf(c));
  }

  /**
   * Makes the view fit a batch whose questions have `keys`: when one was not
   * among the keys the cut-short chains (and base chains) were read for,
   * they are forgotten, to be read again for this batch. (A cut-short rule
   * is sound for any question, but precise only for those it was read for.)
   */
  useKeys(keys: ReadonlySet<string>): void {
    if (this.#elided.size > 0 && [...keys].some((k) => !this.#keys.has(k))) {
      for (const k of this.#elided) this.#chains.delete(k);
      for (const [hook, chains] of this.#hooks) {
        if (chains.some((c) => this.#elided.has(keyOf(c)))) this.#hooks.delete(hook);
      }
      this.#elided.clear();
    }
    this.#keys = keys;
  }

  hasSet(x: Named): boolean {
    return this.#sets.has(keyOf(x));
  }

  addSet(s: NftSet): void {
    this.#sets.set(keyOf(s), s);
  }

  /** The misses since the last call, and forgets them. */
  takeMisses(): Misses {
    const m = this.#misses;
    this.#misses = { hooks: [], chains: [], sets: [] };
    return m;
  }

  baseChains(family: "ipv4" | "ipv6", hook: NftHook): readonly NftChain[] | undefined {
    const all = this.#hooks.get(hook);
    if (all === undefined) {
      this.#misses.hooks.push(hook);
      return undefined;
    }
    const own = family === "ipv4" ? "ip" : "ip6";
    return all.filter((c) => c.family === own || c.family === "inet");
  }

  chain(ref: TableRef, name: string): NftChain | undefined {
    const c = this.#chains.get(keyOf({ family: ref.family, table: ref.table, name }));
    if (c === undefined) this.#misses.chains.push({ family: ref.family, table: ref.table, name });
    return c;
  }

  set(ref: TableRef, name: string): NftSet | undefined {
    const s = this.#sets.get(keyOf({ family: ref.family, table: ref.table, name }));
    if (s === undefined) this.#misses.sets.push({ family: ref.family, table: ref.table, name });
    return s;
  }
}
