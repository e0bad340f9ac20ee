import assert from "node:assert/strict";
import { memoryLog } from "../support/kube_test_kit.ts";
import { type AccessEnvironment, AccessError } from "../../lib/kube/access.ts";
import { startKubernetes } from "../../lib/kube/start.ts";
import { FakeKubeApi } from "../../testbed/fake_kube_api.ts";

const env = (
  files: Record<string, string>,
  vars: Record<string, string> = {},
): AccessEnvironment => ({
  env: (n) => vars[n],
  readTextFile: (
    p,
  ) => (p in files ? Promise.resolve(files[p]!) : Promise.reject(new Error(`no ${p}`))),
  exists: (p) => Promise.resolve(p in files),
});

Deno.test("startKubernetes: off, or no credentials, starts nothing; unusable ones reject", async () => {
  const log = memoryLog();
  const signal = new AbortController().signal;
  const o = { kubeconfig: undefined, userAgent: "t" };
  assert.equal(
    await startKubernetes({ ...o, kubernetes: "off" }, log, signal, env({}, { KUBECONFIG: "/k" })),
    undefined,
  );
  assert.equal(
    await startKubernetes({ ...o, kubernetes: "auto" }, log, signal, env({})),
    undefined,
  );
  assert.ok(log.lines.some((l) => l.includes("no credentials found")));
  await assert.rejects(
    startKubernetes(
      { ...o, kubernetes: "auto", kubeconfig: "/k" },
      log,
      signal,
      env({ "/k": "current-context: x\n" }),
    ),
    AccessError,
  );
});

Deno.test("startKubernetes with a kubeconfig lists and watches, and stops with the signal", async () => {
  const fake = new FakeKubeApi({ token: "s3cret" });
  const kubeconfig = [
    "current-context: c",
    "contexts: [{ name: c, context: { cluster: k, user: u } }]",
    `clusters: [{ name: k, cluster: { server: "${fake.url}" } }]`,
    "users: [{ name: u, user: { token: s3cret } }]",
  ].join("\n");
  const stop = new AbortController();
  const log = memoryLog();
  try {
    const kube = await startKubernetes(
      { kubernetes: "auto", kubeconfig: "/k", userAgent: "conntrack-cleaner/test" },
      log,
      stop.signal,
      env({ "/k": kubeconfig }),
    );
    assert.ok(kube);
    assert.equal(kube.origin, "kubeconfig /k (context c)");
    const t0 = performance.now();
    while (kube.services.freshness() !== "live") {
      assert.ok(performance.now() - t0 < 5000, "live within 5 s");
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(fake.requests.every((r) => r.authorization === "Bearer s3cret"));
    stop.abort();
    await kube.done;
    kube.close();
  } finally {
    stop.abort();
    await fake.close();
  }
});
