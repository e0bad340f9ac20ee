/**
 * A fake node for the events source's unit tests: its conntrack table, the
 * event queue, GETs answered from the table, a fake dump, and the two
 * sysctls the source reads.
 *
 * @module
 */
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import { ctMsgType, IPCTNL_MSG_CT_NEW, IPS_DST_NAT } from "../../lib/netlink/ctnetlink.ts";
import { Errno } from "../../lib/os/errno.ts";
import { NLM_F_CREATE, NLM_F_EXCL } from "../../lib/netlink/message.ts";
import type { Candidate, Snapshot } from "../../lib/model/snapshot.ts";
import type { Source } from "../../lib/sources/source.ts";
import { type EventsSourceOptions, NetlinkEventsSource } from "../../lib/sources/netlink_events.ts";
import type { NetfilterSysctl } from "../../lib/sources/events_health.ts";
import { type Tuple, tupleKey } from "../../lib/model/tuple.ts";
import { decodeRequest, errorFor, FakeKernel, frame } from "../support/netlink_fake.ts";
import {
  appendNewRequest,
  dumpedPayload,
  type DumpedSpec,
  type EntrySpec,
} from "../support/netlink_fill.ts";

export const SYN_SENT = 1, ESTABLISHED = 3;

/** Candidate `i`: 10.0.0.i:(40000+i) → 10.96.0.10:80, SYN_SENT. */
export function spec(i: number, o: Partial<EntrySpec> = {}): EntrySpec {
  return {
    family: "ipv4",
    src: `10.0.0.${i}`,
    dst: "10.96.0.10",
    sport: 40000 + i,
    dport: 80,
    zone: 0,
    status: 0,
    tcpState: SYN_SENT,
    timeout: 120,
    ...o,
  };
}

/** The CT_NEW payload of an entry (nfgenmsg and attributes). */
export function payload(s: EntrySpec): Uint8Array {
  const b = new MessageBuilder();
  appendNewRequest(b, 1, s);
  return b.bytes().slice(16);
}

export function tupleOf(e: EntrySpec): Tuple {
  return { family: e.family, src: e.src, dst: e.dst, sport: e.sport, dport: e.dport, zone: e.zone };
}

/** An event message announcing a new entry with this payload. */
export const newEvent = (p: Uint8Array) =>
  frame(ctMsgType(IPCTNL_MSG_CT_NEW), NLM_F_CREATE | NLM_F_EXCL, 0, 0, p);

/** A fake node: its table, event queue, GETs and dumps. */
export class Node {
  table = new Map<string, EntrySpec>();
  /** Payloads of entries that are not plain (translated, zoned), by tuple key. */
  special = new Map<string, Uint8Array>();
  dumps = 0;
  failDump = false;
  getsFail: number | undefined;
  sysctls: Record<NetfilterSysctl, string | undefined> = {
    nf_conntrack_events: "1",
    nf_conntrack_count: "0",
  };
  kernel = new FakeKernel((req, s) => {
    const t = decodeRequest(req).tuple!;
    if (this.getsFail !== undefined) return [errorFor(req, s.portId, this.getsFail)];
    const key = tupleKey(t), e = this.table.get(key);
    return e === undefined
      ? [errorFor(req, s.portId, Errno.ENOENT)]
      : [frame(ctMsgType(IPCTNL_MSG_CT_NEW), 0, req.seq, s.portId, this.payloadOf(key, e))];
  });
  events = new FakeKernel(() => []);
  now = 0;
  readonly dump: Source = {
    name: "fake dump",
    snapshot: (): Promise<Snapshot> => {
      this.dumps++;
      if (this.failDump) return Promise.reject(new Error("dump failed"));
      const candidates: Candidate[] = [...this.table.values()]
        .filter((e) => e.tcpState === SYN_SENT && e.proto === undefined)
        .map((e) => ({ ...tupleOf(e), timeout: e.timeout, seenFrom: 0, seenTo: 0 }));
      return Promise.resolve({
        candidates,
        scanned: this.table.size,
        malformed: 0,
        startedAt: 0,
        finishedAt: 0,
      });
    },
  };

  payloadOf(key: string, e: EntrySpec): Uint8Array {
    return this.special.get(key) ?? payload(e);
  }

  /** The event queue of the socket opened last. */
  get queue() {
    return this.events.sockets.at(-1)!.queue;
  }

  add(s: EntrySpec, heard = true): void {
    this.table.set(tupleKey(tupleOf(s)), s);
    if (heard) this.event(s);
  }
  event(s: EntrySpec): void {
    this.queue.push(newEvent(payload(s)));
  }
  /**
   * A translated entry (to `backend`:8080) in the table; `heard`: its
   * creation event is queued. `zones`: per direction instead of `s.zone`.
   */
  translated(
    s: EntrySpec,
    backend: string,
    heard = true,
    zones?: { orig: number; reply: number },
  ): void {
    const d: DumpedSpec = {
      ...s,
      status: s.status | IPS_DST_NAT,
      replySrc: backend,
      replySport: 8080,
      ...(zones ? { zone: 0, origZone: zones.orig, replyZone: zones.reply } : {}),
    };
    const key = tupleKey({ ...tupleOf(s), zone: zones?.orig ?? s.zone });
    const p = dumpedPayload(d);
    this.special.set(key, p);
    this.table.set(key, s);
    if (heard) this.queue.push(newEvent(p));
  }
  source(o: Partial<EventsSourceOptions> = {}): NetlinkEventsSource {
    return new NetlinkEventsSource({
      dump: this.dump,
      clock: () => this.now,
      openEvents: () => this.events.open(),
      openTransport: () => this.kernel.open(),
      sysctl: (name) => Promise.resolve(this.sysctls[name]),
      timeoutMs: 50,
      ...o,
    });
  }
}

/** The client key of candidate `i` (see {@linkcode spec}). */
export const keyOf = (i: number) => ({
  family: "ipv4" as const,
  src: `10.0.0.${i}`,
  dst: "10.96.0.10",
  dport: 80,
  zone: 0,
});

/** The client keys' strings of the candidates of a snapshot, sorted. */
export const keys = (s: Snapshot) => s.candidates.map((c) => c.src).sort();
