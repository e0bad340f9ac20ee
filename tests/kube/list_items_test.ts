import assert from "node:assert/strict";
import { ListSplitter, MAX_ITEM_BYTES } from "../../lib/kube/list_items.ts";
import { endpointSlice, service } from "../../testbed/kube_objects.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** Feeds `bytes` in chunks of `size` bytes: the metadata and the items handed on. */
function split(
  bytes: Uint8Array,
  size = bytes.length || 1,
): { metadata: unknown; items: unknown[] } {
  const items: unknown[] = [];
  const s = new ListSplitter((o) => items.push(o));
  for (let i = 0; i < bytes.length; i += size) s.push(bytes.subarray(i, i + size));
  return { metadata: s.end(), items };
}

const ITEMS = [
  service("web", "shop", { clusterIPs: ["10.96.0.10"], ports: [{ name: "http", port: 80 }] }),
  endpointSlice("web", "shop", "ipv6", [{ name: "http", port: 8080 }], [
    { addr: "2001:db8::1" },
    { addr: "2001:db8::2", ready: false },
  ]),
  { metadata: { name: 'a "quoted" ]} name\\', labels: { "x": "[{,:}]" } }, n: [1, [2, [3]]] },
  { name: "zoné-ü", path: "C:\\\\", q: '\\"' },
  { s: "}],{", t: '"]}' },
  "a string item",
  42,
  null,
];
const LIST = {
  kind: "ServiceList",
  apiVersion: "v1",
  metadata: { resourceVersion: "123", continue: "abc" },
  items: ITEMS,
};

Deno.test("ListSplitter hands on the items JSON.parse would give, and the metadata, compact or indented", () => {
  for (const text of [JSON.stringify(LIST), JSON.stringify(LIST, null, 2)]) {
    const r = split(enc(text));
    assert.deepEqual(r.metadata, LIST.metadata);
    assert.deepEqual(r.items, ITEMS);
  }
});

Deno.test("ListSplitter gives the same result whatever the chunk boundaries (every split point, 1-byte chunks)", () => {
  const bytes = enc(JSON.stringify(LIST, null, 1));
  assert.deepEqual(split(bytes, 1), { metadata: LIST.metadata, items: ITEMS });
  for (let at = 1; at < bytes.length; at++) {
    const items: unknown[] = [];
    const s = new ListSplitter((o) => items.push(o));
    s.push(bytes.subarray(0, at));
    s.push(bytes.subarray(at));
    assert.deepEqual(
      { metadata: s.end(), items },
      { metadata: LIST.metadata, items: ITEMS },
      `${at}`,
    );
  }
});

Deno.test("ListSplitter hands each item on as soon as its last byte arrived", () => {
  const text = '{"metadata":{"resourceVersion":"1"},"items":[{"a":1},{"b":2}]}';
  const bytes = enc(text);
  const items: unknown[] = [];
  const s = new ListSplitter((o) => items.push(o));
  const comma = text.indexOf('{"a":1}') + 7;
  s.push(bytes.subarray(0, comma));
  assert.deepEqual(items, [], "the item may go on until its comma");
  s.push(bytes.subarray(comma, comma + 1));
  assert.deepEqual(items, [{ a: 1 }]);
  s.push(bytes.subarray(comma + 1));
  assert.deepEqual(items, [{ a: 1 }, { b: 2 }]);
  assert.equal(s.count, 2);
});

Deno.test("ListSplitter reads metadata placed after items, and an empty items array", () => {
  const r = split(enc(' { "items" : [ ] , "metadata" : { "resourceVersion" : "9" } } \n'));
  assert.deepEqual(r, { metadata: { resourceVersion: "9" }, items: [] });
});

Deno.test("ListSplitter refuses what is not one whole list object, and a malformed item", () => {
  for (
    const bad of [
      "[1,2]",
      '{"metadata":{}',
      '{"metadata":{},"items":[{"a":1}]}}',
      '{"metadata":{},"items":[{"a":"open]}',
      '{"metadata":{}}',
      '{"metadata":{},"items":{"a":1}}',
      '{"metadata":"x","items":[]}',
      '{"metadata":{},"items":[]} trailing',
      '{"metadata":{},"items":[{"b":tru}]}',
      '{"metadata":{},"items":[{"a":1}]]',
      "",
    ]
  ) {
    assert.throws(() => split(enc(bad)), SyntaxError, bad);
  }
});

Deno.test("ListSplitter refuses an item over MAX_ITEM_BYTES, arriving in small chunks", () => {
  const big = `{"metadata":{},"items":[{"x":"${"a".repeat(MAX_ITEM_BYTES)}"}]}`;
  assert.throws(() => split(enc(big), 64 << 10), /an item over/);
});
