import assert from "node:assert/strict";
import { boundAddresses, formatListen, openListener, parseListen } from "../../lib/serve/listen.ts";

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
  for (
    const text of ["0.0.0.0:10395", "[::1]:9999", "localhost:8080", "[2001:db8::1]:1", ":10395"]
  ) {
    assert.equal(formatListen(parseListen(text)!), text);
  }
});

Deno.test("parseListen reads :PORT as every address (bound as [::]); a bad port is still refused", () => {
  assert.deepEqual(parseListen(":10395"), { hostname: "::", port: 10395, all: true });
  assert.deepEqual(parseListen(":0"), { hostname: "::", port: 0, all: true });
  for (const bad of [":", ":65536", ":080", "::10395", ": 80", ":-1"]) {
    assert.equal(parseListen(bad), undefined, bad);
  }
  assert.equal(parseListen("[::]:10395")?.all, undefined, "an explicit [::] is one address");
});

Deno.test("openListener for :PORT takes IPv4 and IPv6 connections on one [::] socket", async () => {
  const l = openListener(parseListen(":0")!);
  const addr = l.addr as Deno.NetAddr;
  try {
    assert.equal(addr.hostname, "::");
    assert.equal(boundAddresses(addr), "all IPv4 and IPv6 addresses");
    for (const hostname of ["127.0.0.1", "::1"]) {
      const [conn, accepted] = await Promise.all([
        Deno.connect({ hostname, port: addr.port }),
        l.accept(),
      ]);
      const from = (accepted.remoteAddr as Deno.NetAddr).hostname;
      assert.ok(from.endsWith(hostname), `${hostname} arrives as ${from}`);
      conn.close();
      accepted.close();
    }
  } finally {
    l.close();
  }
});

Deno.test("openListener falls back to 0.0.0.0 for :PORT only when [::] cannot be bound, not when the port is taken", () => {
  const asked: string[] = [];
  const fake = (failWith: Error) => (o: Deno.TcpListenOptions) => {
    asked.push(`${o.hostname} ${o.port}`);
    if (o.hostname === "::") throw failWith;
    return { addr: { hostname: o.hostname, port: o.port, transport: "tcp" } } as Deno.Listener;
  };
  const noV6 = new Error("Address family not supported by protocol (os error 97)");
  const l = openListener(parseListen(":10395")!, fake(noV6));
  assert.deepEqual(asked, [":: 10395", "0.0.0.0 10395"]);
  assert.equal(boundAddresses(l.addr as Deno.NetAddr), "all IPv4 addresses");

  asked.length = 0;
  const inUse = new Deno.errors.AddrInUse("Address already in use");
  assert.throws(() => openListener(parseListen(":10395")!, fake(inUse)), Deno.errors.AddrInUse);
  assert.deepEqual(asked, [":: 10395"]);

  asked.length = 0;
  assert.throws(() => openListener(parseListen("[::]:10395")!, fake(noV6)), /os error 97/);
  assert.equal(asked.length, 1, "one address asked for: no fallback");
});

Deno.test("boundAddresses names the wildcard binds and nothing else", () => {
  assert.equal(boundAddresses({ hostname: "0.0.0.0", port: 1 }), "all IPv4 addresses");
  assert.equal(boundAddresses({ hostname: "::", port: 1 }), "all IPv4 and IPv6 addresses");
  assert.equal(boundAddresses({ hostname: "::1", port: 1 }), undefined);
  assert.equal(boundAddresses({ hostname: "10.0.0.7", port: 1 }), undefined);
});
