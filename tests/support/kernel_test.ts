/**
 * `kernelTest`: a Deno.test that needs root, `ip netns` and conntrack. Where
 * they are missing it is skipped with the reason in its name — except when
 * `CONNTRACK_CLEANER_REQUIRE_KERNEL_TESTS=1` (set by .ci/run), where a
 * missing prerequisite fails the test instead of hiding it.
 *
 * @module
 */
import { canRunKernelTests } from "./netns.ts";

const reason = await canRunKernelTests();
const required = Deno.env.get("CONNTRACK_CLEANER_REQUIRE_KERNEL_TESTS") === "1";

/** Registers `fn` as a kernel test (see the module doc). */
export function kernelTest(name: string, fn: () => Promise<void>): void {
  if (reason === undefined) {
    Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
  } else if (required) {
    Deno.test(name, () => {
      throw new Error(`kernel test required but cannot run: ${reason}`);
    });
  } else {
    Deno.test({ name: `${name} (skipped: ${reason})`, ignore: true, fn });
  }
}
