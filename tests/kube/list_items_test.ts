import assert from "node:assert/strict";
import { splitList } from "../../lib/kube/list_items.ts";
import { endpointSlice, service } from "../../testbed/kube_objects.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("splitList gives the same metadata and items as JSON.parse for real list shapes, compact or indented", () => {
  const items = [
    service("web", "shop", { clusterIPs: ["10.96.0.10"], ports: [{ name: "http", port: 80 }] }),
    endpointSlice("web", "shop", "ipv6", [{ name: "http", port: 8080 }], [
      { addr: "2001:db8::1" },
      { addr: "2001:db8::2", ready: false },
    ]),
    { metadata: { name: 'a "quoted" ]} name\\', labels: { "x": "[{,:}]" } }, n: [1, [2, [3]]] },
    "a string item",
    42,
    null,
  ];
  const list = {
    kind: "ServiceList",
    apiVersion: "v1",
    metadata: { resourceVersion: "123", continue: "abc" },
    items,
  };
  for (const text of [JSON.stringify(list), JSON.stringify(list, null, 2)]) {
    const l = splitList(enc(text));
    assert.deepEqual(l.metadata, list.metadata);
    assert.equal(l.count, items.length);
    assert.deepEqual([...l.items], items);
  }
});

Deno.test("splitList reads metadata placed after items, and an empty items array", () => {
  const l = splitList(enc(' { "items" : [ ] , "metadata" : { "resourceVersion" : "9" } } \n'));
  assert.deepEqual(l.metadata, { resourceVersion: "9" });
  assert.equal(l.count, 0);
  assert.deepEqual([...l.items], []);
});

Deno.test("splitList keeps a non-ASCII string and escaped backslashes before a quote intact", () => {
  const item = { name: "zoné-ü", path: "C:\\\\", q: '\\"' };
  const l = splitList(enc(JSON.stringify({ metadata: {}, items: [item, item] })));
  assert.deepEqual([...l.items], [item, item]);
});

Deno.test("splitList refuses what is not one balanced list object", () => {
  for (
    const bad of [
      "[1,2]",
      '{"metadata":{}',
      '{"metadata":{},"items":[{"a":1}]}}',
      '{"metadata":{},"items":[{"a":"open]}',
      '{"metadata":{}}',
      '{"metadata":{},"items":{"a":1}}',
      '{"metadata":{},"items":[]} trailing',
      "",
    ]
  ) {
    assert.throws(() => splitList(enc(bad)), SyntaxError, bad);
  }
});

Deno.test("splitList parses an item only when reached: a malformed item throws there, the ones before it are given", () => {
  const l = splitList(
    enc('{"metadata":{"resourceVersion":"1"},"items":[{"a":1},{"b":tru},{"c":3}]}'),
  );
  assert.equal(l.count, 3);
  const it = l.items[Symbol.iterator]();
  assert.deepEqual(it.next().value, { a: 1 });
  assert.throws(() => it.next(), SyntaxError);
});
