/**
 * A list answer's bytes (`{"kind":…,"metadata":{…},"items":[…]}`) split
 * without parsing it whole: one pass over the bytes finds where each member
 * of the top-level object and each element of `items` begins and ends
 * (strings, escapes and nesting followed, nothing built), then only
 * `metadata` is parsed, and each item is parsed when it is asked for. A page
 * of 100 slices of 100 endpoints is 3 MB of bytes, but some 20 MB as one
 * parsed object graph: here no more than one item is ever parsed at once
 * (docs/benchmarks.md, "Kubernetes at cluster scale"). Pure.
 *
 * @module
 */

/** A list split: its `metadata` parsed, its items parsed one at a time. */
export interface SplitList {
  /** The parsed `metadata` member; `undefined` when absent. */
  metadata: unknown;
  /** How many items. */
  count: number;
  /** Each item parsed when reached (a malformed item throws a `SyntaxError` then). */
  items: Iterable<unknown>;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

const utf8 = new TextDecoder();
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/**
 * Splits `bytes`, the UTF-8 JSON of an object whose `items` member is an
 * array. Throws a `SyntaxError` when the bytes are not one balanced object
 * (the items themselves are checked only when parsed), or when `items` is
 * present but not an array.
 *
 * @example
 * ```ts
 * import { splitList } from "./list_items.ts";
 * const l = splitList(new TextEncoder().encode('{"metadata":{"resourceVersion":"7"},"items":[{"a":"]"},{"b":[1,2]}]}'));
 * [l.metadata, l.count, [...l.items]];
 * // => [{ resourceVersion: "7" }, 2, [{ a: "]" }, { b: [1, 2] }]]
 * ```
 */
export function splitList(bytes: Uint8Array): SplitList {
  const n = bytes.length;
  let i = skipSpace(bytes, 0);
  if (bytes[i] !== OPEN_OBJ) throw new SyntaxError("a list is not a JSON object");
  /** Starts and ends of the items, two numbers each. */
  const spans: number[] = [];
  let metadata: [number, number] | undefined;
  let sawItems = false;
  let depth = 0;
  /** At depth 1: the member whose value is being read, and where that value began. */
  let member: string | undefined;
  let valueStart = -1;
  /** At depth 2 inside `items`: where the current element began (-1 between elements). */
  let itemStart = -1;
  let expectKey = true;
  const endValue = (end: number) => {
    if (member === "metadata") metadata = [valueStart, trimEnd(bytes, valueStart, end)];
    member = undefined;
  };
  for (; i < n; i++) {
    const b = bytes[i]!;
    if (b === QUOTE) {
      const end = stringEnd(bytes, i);
      if (depth === 1 && expectKey) {
        member = utf8.decode(bytes.subarray(i + 1, end));
        expectKey = false;
      } else if (depth === 2 && member === "items" && itemStart < 0) itemStart = i;
      i = end;
      continue;
    }
    if (isSpace(b)) continue;
    if (depth === 2 && member === "items" && itemStart < 0 && b !== CLOSE_ARR && b !== COMMA) {
      itemStart = i;
    }
    switch (b) {
      case OPEN_OBJ:
      case OPEN_ARR:
        if (depth === 1 && member === "items") {
          if (b !== OPEN_ARR) throw new SyntaxError("a list's items are not an array");
          sawItems = true;
        }
        depth++;
        break;
      case CLOSE_OBJ:
      case CLOSE_ARR:
        if (depth === 2 && member === "items" && b === CLOSE_ARR && itemStart >= 0) {
          spans.push(itemStart, trimEnd(bytes, itemStart, i));
          itemStart = -1;
        }
        depth--;
        if (depth === 0) {
          endValue(i);
          if (skipSpace(bytes, i + 1) !== n) throw new SyntaxError("bytes after a list's end");
          return result(bytes, metadata, spans, sawItems);
        }
        if (depth < 0) throw new SyntaxError("unbalanced brackets in a list");
        break;
      case COLON:
        if (depth === 1) valueStart = skipSpace(bytes, i + 1);
        break;
      case COMMA:
        if (depth === 1) {
          endValue(i);
          expectKey = true;
        } else if (depth === 2 && member === "items" && itemStart >= 0) {
          spans.push(itemStart, trimEnd(bytes, itemStart, i));
          itemStart = -1;
        }
        break;
    }
  }
  throw new SyntaxError("a list ends before its closing brace");
}

function result(
  bytes: Uint8Array,
  metadata: [number, number] | undefined,
  spans: number[],
  sawItems: boolean,
): SplitList {
  if (!sawItems) throw new SyntaxError("a list without items");
  const parse = (start: number, end: number): unknown =>
    JSON.parse(utf8.decode(bytes.subarray(start, end)));
  return {
    metadata: metadata === undefined ? undefined : parse(metadata[0], metadata[1]),
    count: spans.length / 2,
    items: {
      *[Symbol.iterator]() {
        for (let k = 0; k < spans.length; k += 2) yield parse(spans[k]!, spans[k + 1]!);
      },
    },
  };
}

/** The index of the quote that closes the string opened at `open`. */
function stringEnd(bytes: Uint8Array, open: number): number {
  let i = open;
  while (true) {
    i = bytes.indexOf(QUOTE, i + 1);
    if (i < 0) throw new SyntaxError("a string in a list is not closed");
    let slashes = 0;
    while (bytes[i - 1 - slashes] === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return i;
  }
}

function skipSpace(bytes: Uint8Array, i: number): number {
  while (i < bytes.length && isSpace(bytes[i]!)) i++;
  return i;
}

/** `end` moved back over white space, not before `start`. */
function trimEnd(bytes: Uint8Array, start: number, end: number): number {
  while (end > start && isSpace(bytes[end - 1]!)) end--;
  return end;
}
