import assert from "node:assert/strict";
import { formatListen, parseListen } from "../../lib/serve/listen.ts";

Deno.test("parseListen reads IPv4, bracketed IPv6, host names and off-limits ports", () => {
  assert.deepEqual(parseListen("0.0.0.0:10395"), { hostname: "0.0.0.0", port: 10395 });
  assert.deepEqual(parseListen("[10.0.0.7]:10395"), { hostname: "10.0.0.7", port: 10395 });
  assert.equal(parseListen("[10.0.0.256]:10395"), undefined);
  assert.deepEqual(parseListen("[::]:9000"), { hostname: "::", port: 9000 });
  assert.deepEqual(parseListen("[0:0:0:0:0:0:0:1]:1"), { hostname: "::1", port: 1 });
  assert.deepEqual(parseListen("localhost:0"), { hostname: "localhost", port: 0 });
  for (
    const bad of ["::1:80", "[::1]", "host", "host:", "1.2.3.256:80", "[zz]:1", "a_b:1", "host:-1"]
  ) {
    assert.equal(parseListen(bad), undefined, bad);
  }
});

Deno.test("formatListen spells back what parseListen read, IPv6 in brackets", () => {
  for (const text of ["0.0.0.0:10395", "[::1]:9999", "localhost:8080", "[2001:db8::1]:1"]) {
    assert.equal(formatListen(parseListen(text)!), text);
  }
});
