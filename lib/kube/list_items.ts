/**
 * A list answer (`{"kind":…,"metadata":{…},"items":[…]}`) taken apart as
 * its bytes arrive, never parsed whole: one pass over each chunk follows
 * strings, escapes and nesting and finds where each element of `items`
 * begins and ends; each element is parsed as soon as it is complete and
 * handed on, its bytes dropped; of the other members only `metadata` is
 * kept (and parsed at the end). So at most one item's bytes and one parsed
 * item are held at once, whatever the page: a page of 100 slices of 100
 * endpoints is 3 MB of bytes and some 20 MB as one parsed object graph
 * (docs/benchmarks.md, "Kubernetes at cluster scale"). Pure.
 *
 * @module
 */

/** An item or the `metadata` member longer than this is refused (no Kubernetes object is). */
export const MAX_ITEM_BYTES = 4 << 20;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const MAX_KEY_BYTES = 256;

const utf8 = new TextDecoder();
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/** Bytes gathered across chunks, up to a bound. */
class Gather {
  #buf = new Uint8Array(0);
  #n = 0;
  constructor(readonly max: number, readonly what: string) {}
  add(bytes: Uint8Array): void {
    const need = this.#n + bytes.length;
    if (need > this.max) throw new SyntaxError(`${this.what} over ${this.max} bytes`);
    if (need > this.#buf.length) {
      const grown = new Uint8Array(Math.min(this.max, Math.max(need, this.#buf.length * 2, 1024)));
      grown.set(this.#buf.subarray(0, this.#n));
      this.#buf = grown;
    }
    this.#buf.set(bytes, this.#n);
    this.#n = need;
  }
  /** What was gathered plus `tail`, and the buffer emptied (its memory let go). */
  take(tail: Uint8Array): Uint8Array {
    if (this.#n === 0) return tail;
    this.add(tail);
    const out = this.#buf.subarray(0, this.#n);
    this.#buf = new Uint8Array(0);
    this.#n = 0;
    return out;
  }
  get gathering(): boolean {
    return this.#n > 0;
  }
}

/**
 * Feed it the answer's chunks with {@linkcode ListSplitter.push}; each item
 * goes to `onItem` as soon as its last byte arrived; {@linkcode
 * ListSplitter.end} checks the answer was one whole object with an `items`
 * array and gives its parsed `metadata`. A structural error, a malformed
 * item or one over {@linkcode MAX_ITEM_BYTES} throws a `SyntaxError`.
 *
 * @example
 * ```ts
 * import { ListSplitter } from "./list_items.ts";
 * const items: unknown[] = [];
 * const s = new ListSplitter((o) => items.push(o));
 * const bytes = new TextEncoder().encode('{"metadata":{"resourceVersion":"7"},"items":[{"a":"]"},{"b":[1,2]}]}');
 * s.push(bytes.subarray(0, 50));
 * s.push(bytes.subarray(50));
 * [s.end(), items]; // => [{ resourceVersion: "7" }, [{ a: "]" }, { b: [1, 2] }]]
 * ```
 */
export class ListSplitter {
  #onItem: (o: unknown) => void;
  #done = false;
  #depth = 0;
  #inString = false;
  #escape = false;
  /** At depth 1: a key is expected next (after `{` or `,`). */
  #expectKey = false;
  /** At depth 1, inside a key string: its bytes. */
  #key: Gather | undefined;
  /** The member whose value is being read (depth ≥ 1). */
  #member: string | undefined;
  /** Gathering the `metadata` value, or an item. */
  #value: Gather | undefined;
  #metadata: Uint8Array | undefined;
  #sawItems = false;
  /** Items handed on. */
  count = 0;

  constructor(onItem: (o: unknown) => void) {
    this.#onItem = onItem;
  }

  /** Takes the next chunk of the answer. */
  push(chunk: Uint8Array): void {
    // The hot state in locals (written back at the end): this loop sees every byte of a list.
    let inString = this.#inString;
    let escape = this.#escape;
    let depth = this.#depth;
    /** Where, in this chunk, the value being gathered began (0 when it began before). */
    let from = this.#value ? 0 : -1;
    let keyFrom = this.#key ? 0 : -1;
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      const b = chunk[i]!;
      if (inString) {
        if (escape) escape = false;
        else if (b === BACKSLASH) escape = true;
        else if (b === QUOTE) {
          inString = false;
          if (keyFrom >= 0) {
            this.#member = utf8.decode(this.#key!.take(chunk.subarray(keyFrom, i)));
            this.#key = undefined;
            keyFrom = -1;
          }
        }
        continue;
      }
      if (isSpace(b)) continue;
      if (this.#done) throw new SyntaxError("bytes after a list's end");
      if (depth === 0) {
        if (b !== OPEN_OBJ) throw new SyntaxError("a list is not a JSON object");
        depth = 1;
        this.#expectKey = true;
        continue;
      }
      // The first byte of an item, or of the metadata value.
      if (from < 0 && b !== COMMA && b !== CLOSE_ARR && b !== CLOSE_OBJ) {
        if (depth === 2 && this.#member === "items") {
          this.#value = new Gather(MAX_ITEM_BYTES, "an item");
          from = i;
        } else if (depth === 1 && this.#member === "metadata" && !this.#expectKey && b !== COLON) {
          if (b !== OPEN_OBJ) throw new SyntaxError("a list's metadata is not an object");
          this.#value = new Gather(MAX_ITEM_BYTES, "a list's metadata");
          from = i;
        }
      }
      if (b === QUOTE) {
        inString = true;
        if (depth === 1 && this.#expectKey) {
          this.#expectKey = false;
          this.#key = new Gather(MAX_KEY_BYTES, "a key");
          keyFrom = i + 1;
        }
        continue;
      }
      if (b === OPEN_OBJ || b === OPEN_ARR) {
        if (depth === 1 && this.#member === "items") {
          if (b !== OPEN_ARR) throw new SyntaxError("a list's items are not an array");
          this.#sawItems = true;
        }
        depth++;
      } else if (b === CLOSE_OBJ || b === CLOSE_ARR) {
        if (from >= 0 && depth === 2 && this.#member === "items") {
          this.#item(chunk.subarray(from, i));
          from = -1;
        }
        depth--;
        if (depth === 1 && from >= 0 && this.#member === "metadata") {
          this.#metadata = this.#value!.take(chunk.subarray(from, i + 1));
          this.#value = undefined;
          from = -1;
        }
        if (depth === 0) {
          if (b !== CLOSE_OBJ) throw new SyntaxError("unbalanced brackets in a list");
          this.#done = true;
        }
      } else if (b === COMMA) {
        if (depth === 1) {
          this.#expectKey = true;
          this.#member = undefined;
        } else if (depth === 2 && from >= 0 && this.#member === "items") {
          this.#item(chunk.subarray(from, i));
          from = -1;
        }
      }
    }
    this.#inString = inString;
    this.#escape = escape;
    this.#depth = depth;
    // Carry what is unfinished into the next chunk.
    if (from >= 0) this.#value!.add(chunk.subarray(from));
    if (keyFrom >= 0) this.#key!.add(chunk.subarray(keyFrom));
  }

  /** The parsed `metadata` (`undefined` when absent); throws unless the list was whole. */
  end(): unknown {
    if (!this.#done) throw new SyntaxError("a list ends before its closing brace");
    if (!this.#sawItems) throw new SyntaxError("a list without items");
    return this.#metadata === undefined ? undefined : JSON.parse(utf8.decode(this.#metadata));
  }

  #item(tail: Uint8Array): void {
    const bytes = this.#value!.take(tail);
    this.#value = undefined;
    this.count++;
    this.#onItem(JSON.parse(utf8.decode(bytes)));
  }
}
