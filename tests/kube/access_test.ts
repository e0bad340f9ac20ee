import assert from "node:assert/strict";
import {
  type AccessEnvironment,
  AccessError,
  fromKubeconfig,
  parseKubeconfig,
  plainHttpWarning,
  resolveAccess,
  SERVICE_ACCOUNT_DIR,
} from "../../lib/kube/access.ts";

function env(files: Record<string, string>, vars: Record<string, string> = {}): AccessEnvironment {
  return {
    env: (n) => vars[n],
    readTextFile: (p) =>
      p in files ? Promise.resolve(files[p]!) : Promise.reject(new Deno.errors.NotFound(`no ${p}`)),
    exists: (p) => Promise.resolve(p in files),
  };
}

const b64 = (s: string) => btoa(s);
const CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";

function kubeconfig(cluster: string, user: string): string {
  return `apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: other
  context: { cluster: nowhere, user: nobody }
- name: dev
  context:
    cluster: c1
    user: u1
clusters:
- name: c1
  cluster:
${cluster.split("\n").map((l) => "    " + l).join("\n")}
users:
- name: u1
  user:
${user.split("\n").map((l) => "    " + l).join("\n")}
`;
}

Deno.test("kubeconfig: server, CA data, token; relative files next to the kubeconfig", async () => {
  const a = await fromKubeconfig(
    "/etc/k/config",
    env({
      "/etc/k/config": kubeconfig(
        `server: https://127.0.0.1:6443/\ncertificate-authority-data: ${b64(CA)}`,
        "token: abc",
      ),
    }),
  );
  assert.deepEqual(a, {
    server: "https://127.0.0.1:6443",
    caPem: CA,
    token: "abc",
    origin: "kubeconfig /etc/k/config (context dev)",
  });
  const b = await fromKubeconfig(
    "/etc/k/config",
    env({
      "/etc/k/config": kubeconfig(
        "server: https://[::1]:6443\ncertificate-authority: ca.crt",
        "tokenFile: /run/token\nclient-certificate: c.crt\nclient-key-data: " + b64("KEY"),
      ),
      "/etc/k/ca.crt": CA,
      "/etc/k/c.crt": "CERT",
    }),
  );
  assert.equal(b.caPem, CA);
  assert.equal(b.tokenFile, "/run/token");
  assert.equal(b.certPem, "CERT");
  assert.equal(b.keyPem, "KEY");
});

Deno.test("kubeconfig: what is not supported is refused by name", async () => {
  const cases: [string, string, RegExp][] = [
    [
      "server: https://h:1",
      "exec: { command: aws }",
      /user "u1" uses exec, which is not supported/,
    ],
    ["server: https://h:1", "auth-provider: { name: oidc }", /uses auth-provider/],
    ["server: https://h:1", "username: a\npassword: b", /uses username/],
    [
      "server: https://h:1\ninsecure-skip-tls-verify: true",
      "token: t",
      /cluster "c1" uses insecure-skip-tls-verify/,
    ],
    ["server: https://h:1\nproxy-url: http://p:3128", "token: t", /uses proxy-url/],
    ["server: h:1", "token: t", /server "h:1" is not an http\(s\):\/\/HOST\[:PORT\] URL/],
    ["server: https://h:1", "client-certificate-data: " + b64("C"), /needs its key/],
    [
      "server: https://h:1\ncertificate-authority: missing.crt",
      "token: t",
      /cannot read certificate-authority \/k\/missing.crt/,
    ],
  ];
  for (const [cluster, user, re] of cases) {
    await assert.rejects(
      fromKubeconfig("/k/config", env({ "/k/config": kubeconfig(cluster, user) })),
      (e: unknown) => e instanceof AccessError && re.test(e.message),
      re.source,
    );
  }
  await assert.rejects(
    fromKubeconfig("/k/config", env({ "/k/config": "current-context: x\n" })),
    /context "x" is not defined/,
  );
  await assert.rejects(fromKubeconfig("/k/config", env({ "/k/config": "[" })), /not YAML/);
  await assert.rejects(fromKubeconfig("/k/none", env({})), /kubeconfig \/k\/none: cannot read/);
});

Deno.test("resolveAccess: --kubeconfig first, then in-cluster, then KUBECONFIG, else none", async () => {
  const cfg = kubeconfig("server: https://10.0.0.1:6443", "token: t");
  const inCluster = {
    [`${SERVICE_ACCOUNT_DIR}/token`]: "sa-token",
    [`${SERVICE_ACCOUNT_DIR}/ca.crt`]: CA,
  };
  const vars = { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" };
  const all = env({ ...inCluster, "/a": cfg, "/b": cfg }, { ...vars, KUBECONFIG: "/b:/c" });
  assert.equal((await resolveAccess("/a", all))?.origin, "kubeconfig /a (context dev)");
  const ic = await resolveAccess(undefined, all);
  assert.deepEqual(ic, {
    server: "https://[fd00::1]:443",
    caPem: CA,
    caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
    tokenFile: `${SERVICE_ACCOUNT_DIR}/token`,
    origin: "in-cluster",
  });
  assert.equal(
    (await resolveAccess(undefined, env({ "/b": cfg }, { KUBECONFIG: "/b:/c" })))?.origin,
    "kubeconfig /b (context dev)",
  );
  assert.equal(
    await resolveAccess(undefined, env({}, vars)),
    undefined,
    "no token file: not in a pod",
  );
  assert.equal(await resolveAccess(undefined, env({})), undefined);
});

Deno.test("parseKubeconfig refuses credentials in the server URL, naming the key and not the secret", async () => {
  const text = (server: string) =>
    [
      "current-context: c",
      "contexts: [{ name: c, context: { cluster: k } }]",
      `clusters: [{ name: k, cluster: { server: "${server}" } }]`,
    ].join("\n");
  await assert.rejects(
    parseKubeconfig(text("https://admin:s3cret@10.0.0.1:6443"), "k.yaml"),
    (e: Error) =>
      e instanceof AccessError && /server has credentials in its URL/.test(e.message) &&
      !e.message.includes("s3cret"),
  );
  assert.equal(
    (await parseKubeconfig(text("https://10.0.0.1:6443/"), "k")).cluster.server,
    "https://10.0.0.1:6443",
  );
});

Deno.test("plainHttpWarning: plain http:// is quiet on loopback only", () => {
  for (
    const ok of [
      "http://127.0.0.1:8080",
      "http://[::1]:8080",
      "http://localhost:8080",
      "https://10.0.0.1",
    ]
  ) {
    assert.equal(plainHttpWarning(ok), undefined, ok);
  }
  for (const bad of ["http://10.0.0.1:8080", "http://[fd00::1]:80", "http://api.example:80"]) {
    assert.match(
      plainHttpWarning(bad) ?? "",
      /^Kubernetes: plain http:\/\/ to .*, not loopback/,
      bad,
    );
  }
});
