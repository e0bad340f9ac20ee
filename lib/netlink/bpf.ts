/**
 * Classic BPF socket filters for the conntrack event socket: a small
 * assembler with labels, and the program that lets only what the agent needs
 * cross into userspace. No I/O.
 *
 * Netlink attributes are found with the kernel's ancillary loads, as
 * libnetfilter_conntrack's filter API does: `SKF_AD_NLATTR` (A = offset of
 * an attribute stream, X = type → A = offset of that attribute or 0) and
 * `SKF_AD_NLATTR_NEST` (A = offset of a nest, X = type → A = offset of the
 * child or 0). A classic BPF packet load (`ld`, `ldh`) is big-endian;
 * netlink headers are host order, so header fields are read a byte at a time.
 *
 * @module
 */
import {
  CTA_PROTO_NUM,
  CTA_PROTOINFO,
  CTA_PROTOINFO_TCP,
  CTA_PROTOINFO_TCP_STATE,
  CTA_STATUS,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_PROTO,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
  IPS_DST_NAT,
  NFNL_SUBSYS_CTNETLINK,
  TCP_CONNTRACK_CLOSE,
  TCP_CONNTRACK_SYN_RECV,
  TCP_CONNTRACK_SYN_SENT,
} from "./ctnetlink.ts";
import { HOST_LE, NFGENMSG_LEN, NLM_F_CREATE } from "./message.ts";

/** Instruction classes, sizes, modes and operations (`linux/filter.h`, `linux/bpf_common.h`). */
export const BPF_LD = 0x00, BPF_LDX = 0x01, BPF_ALU = 0x04, BPF_JMP = 0x05, BPF_RET = 0x06;
export const BPF_MISC = 0x07;
export const BPF_W = 0x00, BPF_H = 0x08, BPF_B = 0x10;
export const BPF_IMM = 0x00, BPF_ABS = 0x20, BPF_IND = 0x40;
export const BPF_AND = 0x50;
export const BPF_JA = 0x00, BPF_JEQ = 0x10, BPF_JSET = 0x40;
export const BPF_K = 0x00, BPF_A = 0x10;
export const BPF_TAX = 0x00;
/** Ancillary loads: `SKF_AD_OFF + n` as an unsigned 32-bit offset. */
export const SKF_AD_OFF = -0x1000;
export const SKF_AD_NLATTR = 12;
export const SKF_AD_NLATTR_NEST = 16;

/** One `struct sock_filter`. */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** A jump target: an instruction index once placed, by name. */
type Target = string;

/**
 * Builds a classic BPF program with named jump targets; `build` resolves
 * them into the relative `jt`/`jf` offsets (forward only, at most 255).
 *
 * @example
 * ```ts
 * import { BpfAssembler } from "./bpf.ts";
 * const a = new BpfAssembler();
 * a.ldAbsByte(0).jeq(1, "ok", "no").label("ok").ret(0xffff).label("no").ret(0);
 * a.build().length; // => 4
 * ```
 */
export class BpfAssembler {
  #code: { insn: BpfInsn; jt?: Target; jf?: Target }[] = [];
  #labels = new Map<string, number>();

  #push(code: number, k: number, jt?: Target, jf?: Target): this {
    const e: { insn: BpfInsn; jt?: Target; jf?: Target } = { insn: { code, jt: 0, jf: 0, k } };
    if (jt !== undefined) e.jt = jt;
    if (jf !== undefined) e.jf = jf;
    this.#code.push(e);
    return this;
  }
  /** Names the next instruction. */
  label(name: string): this {
    if (this.#labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.#labels.set(name, this.#code.length);
    return this;
  }
  /** A = the byte at `off`. */
  ldAbsByte(off: number): this {
    return this.#push(BPF_LD | BPF_B | BPF_ABS, off);
  }
  /** A = the byte at X + `off`. */
  ldIndByte(off: number): this {
    return this.#push(BPF_LD | BPF_B | BPF_IND, off);
  }
  /** A = the big-endian word at X + `off`. */
  ldIndWord(off: number): this {
    return this.#push(BPF_LD | BPF_W | BPF_IND, off);
  }
  /** A = `k`. */
  ldImm(k: number): this {
    return this.#push(BPF_LD | BPF_IMM, k);
  }
  /** X = `k`. */
  ldxImm(k: number): this {
    return this.#push(BPF_LDX | BPF_W | BPF_IMM, k);
  }
  /** A = ancillary value `n` (`SKF_AD_OFF + n`). */
  ldAncillary(n: number): this {
    return this.#push(BPF_LD | BPF_W | BPF_ABS, (SKF_AD_OFF + n) >>> 0);
  }
  /** X = A. */
  tax(): this {
    return this.#push(BPF_MISC | BPF_TAX, 0);
  }
  /** A &= `k`. */
  and(k: number): this {
    return this.#push(BPF_ALU | BPF_AND | BPF_K, k >>> 0);
  }
  /** Jump to `jt` when A == `k`, else to `jf`. */
  jeq(k: number, jt: Target, jf: Target): this {
    return this.#push(BPF_JMP | BPF_JEQ | BPF_K, k >>> 0, jt, jf);
  }
  /** Jump to `jt` when A & `k` is not 0, else to `jf`. */
  jset(k: number, jt: Target, jf: Target): this {
    return this.#push(BPF_JMP | BPF_JSET | BPF_K, k >>> 0, jt, jf);
  }
  /** Jump to `to`. */
  ja(to: Target): this {
    return this.#push(BPF_JMP | BPF_JA, 0, to);
  }
  /** Return `k` (bytes of the message to keep; 0 drops it). */
  ret(k: number): this {
    return this.#push(BPF_RET | BPF_K, k >>> 0);
  }

  /** The program, jumps resolved. Throws for an unknown label, a backward or too long jump. */
  build(): BpfInsn[] {
    return this.#code.map(({ insn, jt, jf }, i) => {
      const off = (name: Target | undefined): number => {
        if (name === undefined) return 0;
        const at = this.#labels.get(name);
        if (at === undefined) throw new Error(`unknown label ${name}`);
        const d = at - i - 1;
        if (d < 0 || d > 255) throw new Error(`jump to ${name} out of range (${d})`);
        return d;
      };
      if ((insn.code & 0x07) === BPF_JMP && (insn.code & 0xf0) === BPF_JA) {
        return { ...insn, k: off(jt) };
      }
      return { ...insn, jt: off(jt), jf: off(jf) };
    });
  }
}

/**
 * The program as the kernel takes it: an array of `struct sock_filter`
 * (u16 code, u8 jt, u8 jf, u32 k, host order).
 *
 * @example
 * ```ts
 * import { encodeProgram } from "./bpf.ts";
 * encodeProgram([{ code: 6, jt: 0, jf: 0, k: 0 }]).length; // => 8
 * ```
 */
export function encodeProgram(program: readonly BpfInsn[]): Uint8Array {
  const out = new Uint8Array(program.length * 8);
  const v = new DataView(out.buffer);
  program.forEach((p, i) => {
    v.setUint16(i * 8, p.code, HOST_LE);
    v.setUint8(i * 8 + 2, p.jt);
    v.setUint8(i * 8 + 3, p.jf);
    v.setUint32(i * 8 + 4, p.k, HOST_LE);
  });
  return out;
}

/** Options for {@linkcode conntrackEventFilter}. */
export interface EventFilterOptions {
  /**
   * Also pass newly created TCP entries whose destination was translated
   * (`IPS_DST_NAT`): evidence for the un-NATed rule. Default true.
   */
  evidence?: boolean;
  /**
   * Also pass what ends a candidate: an update (no `NLM_F_CREATE`) of a TCP
   * entry to `SYN_RECV` or `CLOSE` (answered, or reset). For a socket in the
   * update group too. Default false. (Not destructions: an expired entry is
   * reaped by the agent's own GET as often as by the kernel's collector, so
   * its destroy event would mostly come after the GET that found it gone.)
   */
  ended?: boolean;
}

/** Where the attribute stream of a ctnetlink message starts: nlmsghdr + nfgenmsg. */
const ATTRS = 16 + NFGENMSG_LEN;
/** Offsets of `nlmsg_type`'s and `nlmsg_flags`' bytes (both u16, host order). */
const TYPE_HI = HOST_LE ? 5 : 4, TYPE_LO = HOST_LE ? 4 : 5;
const FLAGS_HI = HOST_LE ? 7 : 6;
/** The whole message. */
const ACCEPT = 0xffffffff;

/**
 * The event socket's filter. It passes a ctnetlink `IPCTNL_MSG_CT_NEW`
 * message when
 * - its original tuple is TCP and its TCP state is `SYN_SENT` (a candidate;
 *   userspace still checks `IPS_SEEN_REPLY`), or
 * - with `evidence`: it is TCP, `NLM_F_CREATE` (a new entry, not an update)
 *   and `IPS_DST_NAT` is set (a translated entry);
 *
 * - with `ended`: see {@linkcode EventFilterOptions.ended};
 *
 * and drops everything else (other subsystems, other message types, UDP,
 * established TCP entries), so the kernel does not queue them.
 *
 * @example
 * ```ts
 * import { conntrackEventFilter } from "./bpf.ts";
 * conntrackEventFilter({ evidence: false }).at(-1); // => { code: 6, jt: 0, jf: 0, k: 0 }
 * ```
 */
export function conntrackEventFilter(options: EventFilterOptions = {}): BpfInsn[] {
  const evidence = options.evidence ?? true, ended = options.ended ?? false;
  const notSynSent = evidence ? "evidence" : "drop";
  const a = new BpfAssembler();
  // ctnetlink, IPCTNL_MSG_CT_NEW.
  a.ldAbsByte(TYPE_HI).jeq(NFNL_SUBSYS_CTNETLINK, "type", "drop");
  a.label("type").ldAbsByte(TYPE_LO).jeq(IPCTNL_MSG_CT_NEW, "orig", "drop");
  // CTA_TUPLE_ORIG > CTA_TUPLE_PROTO > CTA_PROTO_NUM == TCP.
  a.label("orig").ldImm(ATTRS).ldxImm(CTA_TUPLE_ORIG).ldAncillary(SKF_AD_NLATTR);
  a.jeq(0, "drop", "proto");
  a.label("proto").ldxImm(CTA_TUPLE_PROTO).ldAncillary(SKF_AD_NLATTR_NEST);
  a.jeq(0, "drop", "protonum");
  a.label("protonum").ldxImm(CTA_PROTO_NUM).ldAncillary(SKF_AD_NLATTR_NEST);
  a.jeq(0, "drop", "tcp");
  a.label("tcp").tax().ldIndByte(4).jeq(IPPROTO_TCP, "info", "drop");
  // CTA_PROTOINFO > CTA_PROTOINFO_TCP > CTA_PROTOINFO_TCP_STATE == SYN_SENT.
  a.label("info").ldImm(ATTRS).ldxImm(CTA_PROTOINFO).ldAncillary(SKF_AD_NLATTR);
  a.jeq(0, notSynSent, "infotcp");
  a.label("infotcp").ldxImm(CTA_PROTOINFO_TCP).ldAncillary(SKF_AD_NLATTR_NEST);
  a.jeq(0, notSynSent, "state");
  a.label("state").ldxImm(CTA_PROTOINFO_TCP_STATE).ldAncillary(SKF_AD_NLATTR_NEST);
  a.jeq(0, notSynSent, "statev");
  a.label("statev").tax().ldIndByte(4);
  a.jeq(TCP_CONNTRACK_SYN_SENT, "accept", ended ? "synrecv" : notSynSent);
  if (ended) {
    // An update (not NLM_F_CREATE) to SYN_RECV or CLOSE.
    a.label("synrecv").jeq(TCP_CONNTRACK_SYN_RECV, "update", "close");
    a.label("close").jeq(TCP_CONNTRACK_CLOSE, "update", notSynSent);
    a.label("update").ldAbsByte(FLAGS_HI).jset(NLM_F_CREATE >> 8, notSynSent, "accept");
  }
  if (evidence) {
    // A new entry (NLM_F_CREATE) with CTA_STATUS & IPS_DST_NAT.
    a.label("evidence").ldAbsByte(FLAGS_HI).jset(NLM_F_CREATE >> 8, "status", "drop");
    a.label("status").ldImm(ATTRS).ldxImm(CTA_STATUS).ldAncillary(SKF_AD_NLATTR);
    a.jeq(0, "drop", "statusv");
    a.label("statusv").tax().ldIndWord(4).jset(IPS_DST_NAT, "accept", "drop");
  }
  a.label("accept").ret(ACCEPT);
  a.label("drop").ret(0);
  return a.build();
}
