import assert from "node:assert/strict";
import { ApiError, FetchKubeApi, MAX_ERROR_BYTES } from "../../lib/kube/api.ts";
import { isolate, PROXY_VARIABLES, readCapped } from "../../lib/kube/transport.ts";
import { FakeKubeApi } from "../../testbed/fake_kube_api.ts";
import { makeTls } from "../support/kube_tls.ts";

const CHILD = new URL("../support/kube_client_child.ts", import.meta.url).pathname;

/** Runs the child with exactly `env` (plus PATH/HOME) and returns what it printed. */
async function child(args: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", CHILD, ...args],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/",
      NO_COLOR: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("FetchKubeApi trusts only the configured CA, not the default roots (which here trust the server)", async () => {
  const [a, b] = await Promise.all([makeTls(), makeTls()]);
  const dir = await Deno.makeTempDir({ prefix: "kube-trust-" });
  const fake = new FakeKubeApi({ tls: { cert: a.serverCert, key: a.serverKey } });
  try {
    await Deno.writeTextFile(`${dir}/a.pem`, a.caCert);
    await Deno.writeTextFile(`${dir}/b.pem`, b.caCert);
    // Default roots = CA A (as a public CA that signed a certificate for the API's name).
    const roots = { DENO_TLS_CA_STORE: "system", SSL_CERT_FILE: `${dir}/a.pem` };
    assert.equal(await child(["plain", fake.url], roots), "ok", "the premise: roots trust A");
    assert.equal(await child(["api", fake.url], roots), "ok", "no CA configured: the roots");
    assert.match(await child(["api", fake.url, `${dir}/b.pem`], roots), /^refused: .*certificate/);
    assert.equal(await child(["api", fake.url, `${dir}/a.pem`], roots), "ok", "configured A");
  } finally {
    await fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FetchKubeApi ignores HTTPS_PROXY/HTTP_PROXY/ALL_PROXY (the API is reached directly)", async () => {
  const fake = new FakeKubeApi();
  try {
    const proxies = {
      HTTP_PROXY: "http://127.0.0.1:9",
      HTTPS_PROXY: "http://127.0.0.1:9",
      ALL_PROXY: "http://127.0.0.1:9",
    };
    assert.match(await child(["plain", fake.url], proxies), /^refused/, "the premise: proxied");
    assert.equal(await child(["api", fake.url], proxies), "ok");
  } finally {
    await fake.close();
  }
});

Deno.test("isolate removes every proxy variable (either case) and empties the roots only with a CA", () => {
  const vars = new Map<string, string>(PROXY_VARIABLES.map((n) => [n, "x"]));
  vars.set("SSL_CERT_DIR", "/etc/ssl/certs");
  const env = {
    get: (n: string) => vars.get(n),
    set: (n: string, v: string) => void vars.set(n, v),
    delete: (n: string) => void vars.delete(n),
  };
  assert.deepEqual(isolate(env, false), [...PROXY_VARIABLES]);
  assert.deepEqual([...vars.keys()], ["SSL_CERT_DIR"], "roots untouched without a CA");
  assert.deepEqual(isolate(env, true), []);
  assert.deepEqual(Object.fromEntries(vars), {
    DENO_TLS_CA_STORE: "system",
    SSL_CERT_FILE: "/dev/null",
  });
});

Deno.test("FetchKubeApi reads the CA file again before each request and trusts a rotated CA", async () => {
  const [a, b] = await Promise.all([makeTls(), makeTls()]);
  const fake = new FakeKubeApi({ tls: { cert: a.serverCert, key: a.serverKey } });
  let onDisk = b.caCert;
  const api = new FetchKubeApi(
    { server: fake.url, caPem: b.caCert, caFile: "/ca.crt", origin: "test" },
    { readTextFile: (p) => (p === "/ca.crt" ? Promise.resolve(onDisk) : Promise.reject(p)) },
  );
  const list = () =>
    api.list("/api/v1/services", { limit: 1 }, AbortSignal.timeout(5000), () => {});
  try {
    await assert.rejects(list(), "CA B: refused");
    assert.equal(api.transport.made, 1);
    onDisk = a.caCert; // the CA rotated: the file now holds A
    assert.equal((await list()).count, 0);
    assert.equal(api.transport.made, 2);
    await list();
    assert.equal(api.transport.made, 2, "unchanged file: the same client");
  } finally {
    api.close();
    await fake.close();
  }
});

Deno.test("FetchKubeApi follows no redirect, and reads at most MAX_ERROR_BYTES of an error answer", async () => {
  const target = new FakeKubeApi();
  const big = "x".repeat(4 * MAX_ERROR_BYTES);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new URL(req.url).pathname === "/big"
        ? new Response(big, { status: 500 })
        : Response.redirect(`${target.url}/api/v1/services`, 302),
  );
  const api = new FetchKubeApi({ server: `http://127.0.0.1:${server.addr.port}`, origin: "t" });
  try {
    await assert.rejects(
      api.list("/api/v1/services", { limit: 1 }, AbortSignal.timeout(5000), () => {}),
      /redirect/,
    );
    assert.equal(target.requests.length, 0, "the redirect target was never asked");
    await assert.rejects(
      api.list("/big", { limit: 1 }, AbortSignal.timeout(5000), () => {}),
      (e: unknown) =>
        e instanceof ApiError && e.code === 500 && e.message.includes("not read") &&
        e.message.length < 1000,
    );
  } finally {
    api.close();
    await server.shutdown();
    await target.close();
  }
});

Deno.test("readCapped returns the bytes up to the cap, undefined past it", async () => {
  const body = (n: number) => new Response(new Uint8Array(n)).body;
  assert.equal((await readCapped(body(10), 10))?.length, 10);
  assert.equal(await readCapped(body(11), 10), undefined);
  assert.equal((await readCapped(null, 10))?.length, 0);
});
