/**
 * Where decoding a rule may stop: a rule whose leading comparisons already
 * fail for every question of a batch cannot match any of them, so its
 * remaining expressions are not decoded. At kube-proxy scale (iptables
 * mode: 20,000 rules in `KUBE-SERVICES`, each `meta l4proto == tcp`,
 * `ip daddr == VIP`, a comment, `tcp dport == P`, a jump) this leaves a
 * few expressions of every rule but the asked Services' ones.
 *
 * Such a rule is kept as the expressions decoded so far, exactly as the
 * kernel has them, followed by {@linkcode ELIDED}, an expression of a kind
 * no evaluator knows (`op: "other"`). That keeps it sound on its own: a
 * packet that fails the leading comparisons fails them in the real rule
 * too; one that passes them (a question outside the batch, or a packet
 * whose destination an earlier rule rewrote) reaches the unknown
 * expression, which an evaluator must not take as "does nothing".
 *
 * Only the run of expressions at the start of a rule is looked at, and in
 * it only loads of what every question carries — the address family
 * (`meta nfproto`), the protocol (`meta l4proto`, TCP), the destination
 * address (`payload` of the network header at the family's offset) and
 * port (`payload` of the transport header at offset 2) — each followed by
 * `cmp eq` of the same register and length. The first other expression
 * (a mask, a negation, a look-up, a source address, a counter…) ends the
 * run, and the rule is decoded whole.
 *
 * @example
 * ```ts
 * import { ELIDED, Prefilter } from "./nft_prefilter.ts";
 * const f = new Prefilter([{
 *   family: "ipv4", src: new Uint8Array(4), dst: new Uint8Array([10, 96, 0, 10]),
 *   sport: 40000, dport: 80, zone: 0, hook: "prerouting",
 * }]);
 * f.start();
 * f.step({ op: "payload", base: "network", offset: 16, len: 4, dreg: 0 }); // => false
 * f.step({ op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([10, 96, 0, 11]) }); // => true
 * ELIDED.op; // => "other"
 * ```
 *
 * @module
 */
import type { NatQuestion, NftExpr } from "./ruleset.ts";

/** The expression that ends a rule whose rest was not decoded (see the module doc). */
export const ELIDED: NftExpr = Object.freeze({ op: "other", name: "(elided)" });

const NFT_META_NFPROTO = 15;
const NFT_META_L4PROTO = 16;
const IPPROTO_TCP = 6;

/** A field every question carries a value of (or none, for the other family's address). */
type Field = "nfproto" | "l4proto" | "dst4" | "dst6" | "dport";
const FIELDS: readonly Field[] = ["nfproto", "l4proto", "dst4", "dst6", "dport"];

function valueOf(f: Field, q: NatQuestion): Uint8Array | undefined {
  switch (f) {
    case "nfproto":
      return new Uint8Array([q.family === "ipv4" ? 2 : 10]);
    case "l4proto":
      return new Uint8Array([IPPROTO_TCP]);
    case "dst4":
      return q.family === "ipv4" ? q.dst : undefined;
    case "dst6":
      return q.family === "ipv6" ? q.dst : undefined;
    case "dport":
      return new Uint8Array([q.dport >> 8, q.dport & 0xff]);
  }
}

/** The field a load expression reads, when it is one every question carries. */
function fieldOf(e: NftExpr): Field | undefined {
  if (e.op === "meta") {
    return e.key === NFT_META_NFPROTO
      ? "nfproto"
      : e.key === NFT_META_L4PROTO
      ? "l4proto"
      : undefined;
  }
  if (e.op !== "payload") return undefined;
  if (e.base === "network" && e.offset === 16 && e.len === 4) return "dst4";
  if (e.base === "network" && e.offset === 24 && e.len === 16) return "dst6";
  if (e.base === "transport" && e.offset === 2 && e.len === 2) return "dport";
  return undefined;
}

/** Bytes as a map key without allocating for the short ones. */
function keyBytes(b: Uint8Array): number | string {
  if (b.length > 4) return b.join(".");
  let n = b.length;
  for (let i = 0; i < b.length; i++) n = n * 256 + b[i]!;
  return n;
}

/** For one field: the question indexes by value, and those the field is unknown for. */
interface FieldIndex {
  readonly byValue: Map<number | string, number[]>;
  readonly value: (number | string | undefined)[];
  readonly unknown: number[];
}

/**
 * One batch's questions, stepped through one rule's expressions at a time:
 * {@linkcode Prefilter.start} at each rule, {@linkcode Prefilter.step} after
 * each decoded expression; `true` means no question can pass what was
 * decoded so far.
 */
export class Prefilter {
  readonly questions: readonly NatQuestion[];
  /** `family dst dport` of every question: what a filtered chain is valid for. */
  readonly keys: ReadonlySet<string>;
  #index = new Map<Field, FieldIndex>();
  /** Indexes of the questions that pass the rule so far; null: all of them. */
  #live: number[] | null = null;
  #active = false;
  #load: { field: Field; dreg: number; len: number } | undefined;

  constructor(questions: readonly NatQuestion[]) {
    this.questions = questions;
    this.keys = new Set(questions.map(keyOf));
    for (const f of FIELDS) {
      const ix: FieldIndex = { byValue: new Map(), value: [], unknown: [] };
      questions.forEach((q, i) => {
        const v = valueOf(f, q);
        const k = v === undefined ? undefined : keyBytes(v);
        ix.value.push(k);
        if (k === undefined) ix.unknown.push(i);
        else ix.byValue.set(k, [...(ix.byValue.get(k) ?? []), i]);
      });
      this.#index.set(f, ix);
    }
  }

  /** A new rule: every question is live again. */
  start(): void {
    this.#live = null;
    this.#active = this.questions.length > 0;
    this.#load = undefined;
  }

  /** Takes the rule's next expression; true when no question can pass the rule's start. */
  step(e: NftExpr): boolean {
    if (!this.#active) return false;
    const field = fieldOf(e);
    if (field !== undefined && (e.op === "payload" || e.op === "meta")) {
      this.#load = { field, dreg: e.dreg, len: e.op === "payload" ? e.len : 1 };
      return false;
    }
    const load = this.#load;
    this.#load = undefined;
    if (
      e.op !== "cmp" || e.cmp !== "eq" || load === undefined || e.sreg !== load.dreg ||
      e.data.length !== load.len
    ) {
      this.#active = false;
      return false;
    }
    const ix = this.#index.get(load.field)!;
    const k = keyBytes(e.data);
    // A question the field is not known for (the other family's address) stays live.
    if (this.#live === null) {
      const hit = ix.byValue.get(k) ?? [];
      // Every question still passes (a protocol or family every one shares): stay at "all".
      if (hit.length + ix.unknown.length < this.questions.length) {
        this.#live = [...hit, ...ix.unknown];
      }
    } else {
      this.#live = this.#live.filter((i) => ix.value[i] === k || ix.value[i] === undefined);
    }
    return this.#live !== null && this.#live.length === 0;
  }
}

/** The key a question is filtered by (`Prefilter.keys`). */
export function keyOf(q: NatQuestion): string {
  return `${q.family} ${q.dst.join(".")} ${q.dport}`;
}
