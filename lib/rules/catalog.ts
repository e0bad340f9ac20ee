/**
 * Every rule the agent knows, by name and summary, for `--help` and docs
 * (`main.ts` decides which run). Adding a rule adds a line here.
 *
 * @module
 */
import { RenewalRule } from "./renewals.ts";
import { UnnatedRule } from "./unnated.ts";
import { StaleEndpointRule } from "./stale_endpoint.ts";
import type { RuleName } from "./rule.ts";

/**
 * The rules' names and one-line summaries, in the order the agent asks them.
 *
 * @example
 * ```ts
 * import { RULE_INFO } from "./catalog.ts";
 * RULE_INFO.map((r) => r.name); // => ["renewals", "unnated", "stale_endpoint"]
 * ```
 */
export const RULE_INFO: readonly { name: RuleName; summary: string }[] = [
  RenewalRule.info,
  UnnatedRule.info,
  StaleEndpointRule.info,
];
