/**
 * The agent's version, from deno.json (so it is set in one place).
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };

/** `0.1.0`, as in deno.json. */
export const VERSION: string = denoJson.version;
