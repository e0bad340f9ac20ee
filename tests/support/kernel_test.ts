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

/** Options for {@linkcode kernelTest}. */
export interface KernelTestOptions {
  /** Keep Deno's op and resource sanitizers on (default: off). */
  sanitize?: boolean;
  /**
   * Why this one test cannot run even where kernel tests can (e.g. a tool it
   * alone needs is missing): it is then skipped with that reason, also when
   * kernel tests are required.
   */
  skip?: string;
}

/** Registers `fn` as a kernel test (see the module doc). */
export function kernelTest(
  name: string,
  fn: () => Promise<void>,
  options: KernelTestOptions = {},
): void {
  const sanitize = options.sanitize ?? false;
  if (reason === undefined && options.skip === undefined) {
    Deno.test({ name, fn, sanitizeOps: sanitize, sanitizeResources: sanitize });
  } else if (reason !== undefined && required) {
    Deno.test(name, () => {
      throw new Error(`kernel test required but cannot run: ${reason}`);
    });
  } else {
    Deno.test({ name: `${name} (skipped: ${reason ?? options.skip})`, ignore: true, fn });
  }
}
