/**
 * What the running kernel does with a stuck `SYN_SENT` entry, told from its
 * release string, and the namespace's `SYN_SENT` timeout.
 *
 * Linux 5.14 stopped renewing an `[UNREPLIED]` `SYN_SENT` entry on each
 * retransmitted SYN (commit e15d4cdf27cb, "netfilter: conntrack: do not renew
 * entry stuck in tcp SYN_SENT state"); the fix went back to the stable lines
 * 5.10.166, 5.4.231 and 4.19.272.
 *
 * @module
 */
import { errorText } from "../basics.ts";

/** Whether the kernel renews stuck SYN_SENT entries on retransmitted SYNs. */
export type SynSentRenewal = "yes" | "no" | "unknown";

/** Stable lines that got the fix, and the first sublevel with it. */
const BACKPORTS: Record<string, number> = { "5.10": 166, "5.4": 231, "4.19": 272 };

/**
 * Tells from a release string (`uname -r`, `Deno.osRelease()`) whether the
 * kernel renews stuck SYN_SENT entries: "no" from 5.14 on and on fixed stable
 * sublevels; "yes" on older plain kernels; "unknown" where a vendor kernel
 * (a release with a suffix such as `-553.el8` or `-150-generic`) may have
 * taken the fix back without saying so in the version, or where the string
 * cannot be read.
 *
 * @example
 * ```ts
 * import { synSentRenewal } from "./kernel.ts";
 * synSentRenewal("6.18.44"); // => "no"
 * synSentRenewal("5.10.120"); // => "yes"
 * synSentRenewal("5.10.0-28-amd64"); // => "unknown"
 * ```
 */
export function synSentRenewal(release: string): SynSentRenewal {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?(.*)$/.exec(release.trim());
  if (!m) return "unknown";
  const major = Number(m[1]), minor = Number(m[2]);
  const sub = m[3] === undefined ? 0 : Number(m[3]);
  const suffix = m[4] ?? "";
  if (major > 5 || (major === 5 && minor >= 14)) return "no";
  const fixedAt = BACKPORTS[`${major}.${minor}`];
  if (fixedAt !== undefined && sub >= fixedAt) return "no";
  // A distribution suffix: the vendor may carry the fix under an older number.
  if (suffix !== "" && !/^\+?$/.test(suffix)) return "unknown";
  return "yes";
}

/** The procfs conntrack table of the network namespace the process runs in. */
export const PROC_CONNTRACK_FILE = "/proc/net/nf_conntrack";

/** Where the namespace's SYN_SENT timeout is. */
export const SYN_SENT_TIMEOUT_FILE = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_syn_sent";

/**
 * Reads the SYN_SENT timeout in seconds, or says why it cannot.
 *
 * @example
 * ```ts ignore
 * // ignore: reads /proc/sys, which needs the nf_conntrack module loaded.
 * import { readSynSentTimeout } from "./kernel.ts";
 * const t = await readSynSentTimeout();
 * if (typeof t === "number") console.log(`SYN_SENT entries live ${t} s`);
 * ```
 */
export async function readSynSentTimeout(
  path: string = SYN_SENT_TIMEOUT_FILE,
): Promise<number | string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    return `cannot read ${path}: ${errorText(e)}`;
  }
  const s = text.trim();
  if (!/^(0|[1-9][0-9]{0,6})$/.test(s)) return `${path} holds ${JSON.stringify(s)}, not seconds`;
  return Number(s);
}
