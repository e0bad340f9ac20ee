/**
 * deploy/components/gke-critical-quota: the ResourceQuota that lets GKE
 * admit the DaemonSet's `system-node-critical` pods outside `kube-system`.
 * Rendered through an overlay with `kubectl kustomize`, it must sit in the
 * DaemonSet's namespace, and its scope selector must match the priority class
 * the pods ask for, as the API server's quota admission matches it.
 */
import assert from "node:assert/strict";
import {
  DEPLOY_DIR,
  type K8sObject,
  kubectlTest,
  kustomize,
  renderOverlay,
} from "../support/kustomize.ts";

/** One `scopeSelector.matchExpressions` item of a ResourceQuota. */
interface ScopeExpression {
  scopeName: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

/**
 * Whether a quota's scope selector selects a pod of this priority class, as
 * quota admission decides it (every expression must hold; only the
 * `PriorityClass` scope is understood here, any other fails the match).
 */
function selectsPriorityClass(expressions: ScopeExpression[], priorityClass: string): boolean {
  if (expressions.length === 0) return false;
  return expressions.every((e) => {
    if (e.scopeName !== "PriorityClass") return false;
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
        return values.includes(priorityClass);
      case "NotIn":
        return !values.includes(priorityClass);
      case "Exists":
        return true;
      case "DoesNotExist":
        return false;
    }
  });
}

Deno.test("selectsPriorityClass: In, NotIn and Exists match as quota admission does; another scope does not", () => {
  const inNode: ScopeExpression = {
    scopeName: "PriorityClass",
    operator: "In",
    values: ["system-node-critical"],
  };
  assert.equal(selectsPriorityClass([inNode], "system-node-critical"), true);
  assert.equal(selectsPriorityClass([inNode], "system-cluster-critical"), false);
  assert.equal(
    selectsPriorityClass([{ ...inNode, operator: "NotIn" }], "system-node-critical"),
    false,
  );
  assert.equal(
    selectsPriorityClass([{ scopeName: "PriorityClass", operator: "Exists" }], "x"),
    true,
  );
  assert.equal(selectsPriorityClass([{ ...inNode, scopeName: "BestEffort" }], "x"), false);
  assert.equal(selectsPriorityClass([], "system-node-critical"), false);
});

function only(objs: K8sObject[], kind: string): K8sObject {
  const found = objs.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `one ${kind}, found ${found.length}`);
  return found[0]!;
}

kubectlTest(
  "kubectl kustomize: an overlay with components/gke-critical-quota admits the DaemonSet's priority class in its namespace",
  async () => {
    const objs = await renderOverlay(["components/gke-critical-quota"]);
    const quota = only(objs, "ResourceQuota");
    const ds = only(objs, "DaemonSet");
    assert.equal(quota.metadata?.namespace, ds.metadata?.namespace);
    const priorityClass = ds.spec.template.spec.priorityClassName as string;
    assert.equal(priorityClass, "system-node-critical");
    assert.ok(
      selectsPriorityClass(quota.spec.scopeSelector.matchExpressions, priorityClass),
      "the quota's scope selector selects the pods' priority class",
    );
    // The ceiling must never hold back a DaemonSet of one pod per node.
    const pods = Number(quota.spec.hard.pods);
    assert.ok(Number.isInteger(pods) && pods >= 5000, `hard pods ${quota.spec.hard.pods}`);
    assert.deepEqual(Object.keys(quota.spec.hard), ["pods"], "it limits nothing but the pod count");
  },
);

kubectlTest(
  "kubectl kustomize deploy/: the GKE quota is opt-in, not in the base",
  async () => {
    const objs = await kustomize(DEPLOY_DIR);
    assert.ok(objs.some((o) => o.kind === "DaemonSet"));
    assert.ok(!objs.some((o) => o.kind === "ResourceQuota"));
  },
);
