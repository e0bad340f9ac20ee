/**
 * The feed registry: what runs beside the loop and is shared by parts
 * (lib/run/parts.ts, `Feed`). Listed so that each one's metrics exist from
 * the start, whether it runs or not.
 *
 * @module
 */
import type { Feed } from "./parts.ts";
import { KUBERNETES_FEED } from "./kubernetes.ts";
import { NAT_RULES_FEED } from "./nat_rules.ts";

/** Every feed. */
export const FEEDS: readonly Feed<unknown>[] = [
  KUBERNETES_FEED as Feed<unknown>,
  NAT_RULES_FEED as Feed<unknown>,
];
