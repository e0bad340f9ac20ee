/**
 * /readyz's word on the Kubernetes Services view (lib/kube/services.ts's
 * `KubeStatus`): what the Kubernetes feed (lib/run/kubernetes.ts) answers.
 *
 * @module
 */
import type { KubeStatus } from "./services.ts";

/**
 * /readyz's word on the Kubernetes view: not ready before the first full
 * lists, nor once the view expired; ready (saying so) while it is stale.
 *
 * @example
 * ```ts
 * import { kubeReadiness } from "./readiness.ts";
 * kubeReadiness({ freshness: "unsynced", lastError: "services: HTTP 403 Forbidden: …" }).reason;
 * // => "Kubernetes: no full list of Services and EndpointSlices yet (services: HTTP 403 Forbidden: …)"
 * ```
 */
export function kubeReadiness(
  s: Pick<KubeStatus, "freshness" | "lastError"> & { lastContactAgeMs?: number | undefined },
): { ok: boolean; reason: string } {
  const why = s.lastError ? ` (${s.lastError.replaceAll("\n", " ")})` : "";
  if (s.freshness === "unsynced") {
    return {
      ok: false,
      reason: `Kubernetes: no full list of Services and EndpointSlices yet${why}`,
    };
  }
  if (s.freshness === "expired") {
    const age = s.lastContactAgeMs === undefined
      ? ""
      : ` for ${Math.round(s.lastContactAgeMs / 1000)}s`;
    return {
      ok: false,
      reason: `Kubernetes: API unreachable${age}; Services vouch for nothing${why}`,
    };
  }
  return { ok: true, reason: "ok" };
}
