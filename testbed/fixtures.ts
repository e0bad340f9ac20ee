/**
 * The ground truth of the captured fixtures (tests/fixtures/): what the
 * capture scripts put into their namespaces, shared by those scripts and by
 * the tests that read the fixtures or fill a namespace the same way.
 *
 * @module
 */
import type { Direction } from "../lib/text/parse.ts";

/** What the kernel should show for a TCP entry (addresses in canonical spelling). */
export interface ExpectedTcp {
  state: string;
  original: Direction;
  reply: Direction;
  /** Zone of the original direction (`zone=` or `zone-orig=`), 0 if none. */
  zone: number;
  unreplied: boolean;
  /** `ASSURED` or absent. */
  flag?: string;
  mark: number;
}

/**
 * What scripts/capture_netlink_fixtures.ts fills its namespace with: the
 * ground truth of tests/fixtures/netlink/, also inserted by the netlink
 * source's kernel test.
 */
export const NETLINK_FIXTURE_ENTRIES = [
  {
    name: "v4_syn_sent",
    args:
      "-p tcp -s 10.10.0.1 -d 10.10.0.2 --sport 40001 --dport 80 --state SYN_SENT --timeout 120",
  },
  {
    name: "v6_syn_sent",
    args:
      "-p tcp -s 2001:db8::1 -d 2001:db8::2 --sport 40002 --dport 443 --state SYN_SENT --timeout 110",
  },
  {
    name: "v4_syn_sent_zone5",
    args:
      "-p tcp -s 10.10.0.1 -d 10.10.0.2 --sport 40003 --dport 80 --state SYN_SENT --timeout 100 --zone 5",
  },
  {
    name: "v4_established",
    args: "-p tcp -s 10.10.0.1 -d 10.10.0.2 --sport 40004 --dport 80 --state ESTABLISHED " +
      "--status SEEN_REPLY,ASSURED --timeout 3600",
  },
  {
    name: "v4_time_wait",
    args: "-p tcp -s 10.10.0.1 -d 10.10.0.2 --sport 40005 --dport 80 --state TIME_WAIT " +
      "--status SEEN_REPLY,ASSURED --timeout 90",
  },
  {
    name: "v4_udp",
    args: "-p udp -s 10.10.0.1 -d 10.10.0.3 --sport 5353 --dport 53 --timeout 30",
  },
  {
    name: "v6_established",
    args: "-p tcp -s 2001:db8::1 -d 2001:db8::2 --sport 40006 --dport 443 --state ESTABLISHED " +
      "--status SEEN_REPLY,ASSURED --timeout 3600",
  },
];
