/**
 * deploy/ checked with the real tools: every manifest against the Kubernetes
 * schemas (npm kubernetes-models), `kubectl kustomize deploy/` rendered, the
 * optional PodMonitor component rendered through an overlay and checked
 * against prometheus-operator's schema (npm @kubernetes-models/prometheus-operator).
 * In CI (CI=true or CONNTRACK_CLEANER_REQUIRE_KERNEL_TESTS=1) a missing
 * kubectl fails these tests instead of skipping them.
 */
import assert from "node:assert/strict";
import {
  PodMonitor,
  PrometheusRule,
} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { Namespace, ResourceQuota, ServiceAccount } from "kubernetes-models/v1";
import { ClusterRole, ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { parseAllDocuments } from "yaml";
import { type K8sObject, kubectlTest, kustomize, renderOverlay } from "../support/kustomize.ts";

const DEPLOY = new URL("../../deploy/", import.meta.url).pathname;

type Obj = K8sObject;

/** The schema each kind of object in deploy/ is checked against. */
// deno-lint-ignore no-explicit-any
const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ResourceQuota": ResourceQuota,
  "apps/v1/DaemonSet": DaemonSet,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

function parse(text: string, what: string): Obj[] {
  return parseAllDocuments(text).map((d) => {
    assert.deepEqual(d.errors.map((e) => e.message), [], `${what}: YAML errors`);
    return d.toJS() as Obj;
  }).filter((o) => o !== null && o !== undefined);
}

/** Throws, naming the object and the schema's complaint, unless `o` is valid. */
function validate(o: Obj, where: string): void {
  const model = MODELS[`${o.apiVersion}/${o.kind}`];
  assert.ok(model, `${where}: no schema known for ${o.apiVersion} ${o.kind}`);
  try {
    new model(o).validate();
  } catch (e) {
    assert.fail(`${where}: ${o.kind} ${o.metadata?.name}: ${e instanceof Error ? e.message : e}`);
  }
}

Deno.test("kubernetes-models: the schemas reject what they should (a container without a name, a string port)", () => {
  const bad: Obj = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: "x" },
    spec: {
      selector: {},
      template: { spec: { containers: [{ image: "x", ports: [{ containerPort: "y" }] }] } },
    },
  };
  assert.throws(() => validate(bad, "test"), /must have required property 'name'|must be integer/);
});

Deno.test("deploy/*.yaml and its components: every object validates against its Kubernetes schema", () => {
  const files = [
    ...[...Deno.readDirSync(DEPLOY)].map((e) => e.name)
      .filter((n) => /\.ya?ml$/.test(n) && !/^kustomization\./.test(n)),
    ...[...Deno.readDirSync(`${DEPLOY}components`)].map((e) => e.name).flatMap((c) =>
      [...Deno.readDirSync(`${DEPLOY}components/${c}`)].map((e) => `components/${c}/${e.name}`)
        .filter((n) => /\.ya?ml$/.test(n) && !/kustomization\./.test(n))
    ),
  ];
  assert.ok(
    files.includes("daemonset.yaml") && files.includes("components/podmonitor/podmonitor.yaml"),
  );
  let checked = 0;
  for (const f of files) {
    for (const o of parse(Deno.readTextFileSync(DEPLOY + f), f)) {
      validate(o, f);
      checked++;
    }
  }
  assert.ok(files.includes("components/prometheusrule/prometheusrule.yaml"));
  assert.ok(files.includes("components/gke-critical-quota/resourcequota.yaml"));
  assert.ok(checked >= 5, `${checked} objects`);
});

kubectlTest(
  "kubectl kustomize deploy/ renders the namespace, service account, RBAC and DaemonSet, all schema-valid",
  async () => {
    const objs = await kustomize(DEPLOY);
    assert.deepEqual(
      objs.map((o) => `${o.kind}/${o.metadata?.name}`).sort(),
      [
        "ClusterRole/conntrack-cleaner",
        "ClusterRoleBinding/conntrack-cleaner",
        "DaemonSet/conntrack-cleaner",
        "Namespace/conntrack-cleaner",
        "ServiceAccount/conntrack-cleaner",
      ],
    );
    for (const o of objs) validate(o, "kubectl kustomize deploy/");
    const ds = objs.find((o) => o.kind === "DaemonSet")!;
    assert.equal(
      ds.spec.template.spec.containers[0].image,
      "registry.example/conntrack-cleaner:0.1.0",
    );
    assert.ok(!objs.some((o) => o.kind === "PodMonitor"), "the PodMonitor is opt-in");
  },
);

kubectlTest(
  "kubectl kustomize: an overlay with components/podmonitor adds a PodMonitor that selects the agent's pods and port",
  async () => {
    const objs = await renderOverlay(["components/podmonitor"]);
    for (const o of objs) validate(o, "overlay");
    const pm = objs.find((o) => o.kind === "PodMonitor");
    assert.ok(pm, "a PodMonitor is rendered");
    const ds = objs.find((o) => o.kind === "DaemonSet")!;
    assert.equal(pm.metadata?.namespace, ds.metadata?.namespace);
    const labels = ds.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels as Record<string, string>)) {
      assert.equal(labels[k], v, `the selector's ${k} matches the pods`);
    }
    const port = ds.spec.template.spec.containers[0].ports.find((p: { name: string }) =>
      p.name === pm.spec.podMetricsEndpoints[0].port
    );
    assert.ok(
      port,
      `the endpoint's port ${pm.spec.podMetricsEndpoints[0].port} is a named container port`,
    );
    assert.equal(pm.spec.podMetricsEndpoints[0].path, "/metrics");
  },
);
