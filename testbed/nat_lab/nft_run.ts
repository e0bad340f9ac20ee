/**
 * Runs nft commands (the `nft -f` language) inside a namespace through
 * libnftables (`libnftables.so.1`, the library the `nft` command is made
 * of), in this process: no `ip netns exec nft` spawn per rule set. The
 * context is created, used and freed with the calling thread switched into
 * the namespace, so its netlink socket lives there.
 *
 * @module
 */
import { insideNetns } from "../ctnetlink.ts";

const SYMBOLS = {
  nft_ctx_new: { parameters: ["u32"], result: "pointer" },
  nft_ctx_free: { parameters: ["pointer"], result: "void" },
  nft_ctx_buffer_output: { parameters: ["pointer"], result: "i32" },
  nft_ctx_buffer_error: { parameters: ["pointer"], result: "i32" },
  nft_ctx_get_error_buffer: { parameters: ["pointer"], result: "pointer" },
  nft_ctx_get_output_buffer: { parameters: ["pointer"], result: "pointer" },
  nft_run_cmd_from_buffer: { parameters: ["pointer", "buffer"], result: "i32" },
} as const;

let nft: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

/** Why libnftables cannot be used here, or undefined. */
export function libnftablesProblem(): string | undefined {
  try {
    nft ??= Deno.dlopen("libnftables.so.1", SYMBOLS).symbols;
    return undefined;
  } catch (e) {
    return `libnftables.so.1 cannot be loaded: ${e instanceof Error ? e.message : e}`;
  }
}

/** An nft command that failed, with what libnftables printed. */
export class NftError extends Error {
  constructor(readonly script: string, readonly output: string) {
    super(`nft failed: ${output.trim()}`);
    this.name = "NftError";
  }
}

/**
 * Runs `script` in namespace `netns`; returns what it printed (e.g. for
 * `list ruleset`). Throws {@linkcode NftError} when nft rejects it.
 */
export function runNft(netns: string, script: string): string {
  const problem = libnftablesProblem();
  if (problem !== undefined) throw new Error(problem);
  const lib = nft!;
  return insideNetns(netns, () => {
    const ctx = lib.nft_ctx_new(0);
    if (ctx === null) throw new Error("nft_ctx_new failed");
    try {
      lib.nft_ctx_buffer_output(ctx);
      lib.nft_ctx_buffer_error(ctx);
      const rc = lib.nft_run_cmd_from_buffer(ctx, new TextEncoder().encode(`${script}\0`));
      const text = (p: Deno.PointerValue) => p === null ? "" : Deno.UnsafePointerView.getCString(p);
      if (rc !== 0) throw new NftError(script, text(lib.nft_ctx_get_error_buffer(ctx)));
      return text(lib.nft_ctx_get_output_buffer(ctx));
    } finally {
      lib.nft_ctx_free(ctx);
    }
  });
}
