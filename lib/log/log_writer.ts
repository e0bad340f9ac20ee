/**
 * Where log lines go by default: stdout, without ever blocking the event
 * loop. Lines are queued (bounded) and written by asynchronous writes, so a
 * reader that stops reading (a stalled pipe) delays lines, never the agent;
 * once the queue is full, new lines are dropped and counted, as for a closed
 * stdout.
 *
 * @module
 */

/** Where the queue writes: `Deno.stdout` or a fake. */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

/** Options for {@linkcode QueuedWriter}. */
export interface QueuedWriterOptions {
  /** Default `Deno.stdout`. */
  sink?: ByteSink;
  /** Bytes queued at most; a line that does not fit is dropped. Default 256 KiB. */
  maxBytes?: number;
}

/** Bytes handed to one write call at most. */
const BATCH_BYTES = 64 * 1024;
const encoder = new TextEncoder();

/**
 * A bounded queue of lines in front of an asynchronous sink. `write` never
 * blocks and never throws; lines that could not be queued or written are
 * counted in `dropped()`.
 *
 * @example
 * ```ts
 * import { QueuedWriter } from "./log_writer.ts";
 * const got: Uint8Array[] = [];
 * const w = new QueuedWriter({ sink: { write: (p) => (got.push(p.slice()), Promise.resolve(p.length)) } });
 * w.write("one");
 * await w.flush(1000);
 * new TextDecoder().decode(got[0]); // => "one\n"
 * ```
 */
export class QueuedWriter {
  #sink: ByteSink;
  #max: number;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #dropped = 0;
  #pumping: Promise<void> | undefined;

  constructor(options: QueuedWriterOptions = {}) {
    this.#sink = options.sink ?? Deno.stdout;
    this.#max = options.maxBytes ?? 256 * 1024;
  }

  /** Queues `line` and a newline; drops (and counts) it when the queue is full. */
  write(line: string): void {
    const bytes = encoder.encode(line + "\n");
    if (this.#queued + bytes.length > this.#max) {
      this.#dropped++;
      return;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (this.#pumping === undefined) {
      // Started a microtask later, so the lines of one turn go out in one write.
      this.#pumping = Promise.resolve().then(() => this.#pump());
    }
  }

  /** Lines dropped so far: queue full, or the write failed (stdout closed). */
  dropped(): number {
    return this.#dropped;
  }

  /** Lines queued and not yet written. */
  pending(): number {
    return this.#queue.length;
  }

  /** Resolves once everything queued is written, or after `timeoutMs`, whichever is first. */
  async flush(timeoutMs: number): Promise<void> {
    if (this.#pumping === undefined) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => timer = setTimeout(r, timeoutMs));
    await Promise.race([this.#pumping, late]);
    clearTimeout(timer);
  }

  async #pump(): Promise<void> {
    for (;;) {
      if (this.#queue.length === 0) {
        // Cleared in the same step that saw the queue empty: the next write starts a new pump.
        this.#pumping = undefined;
        return;
      }
      // Several lines in one write, up to BATCH_BYTES (a longer line alone).
      let n = 0, size = 0;
      while (n < this.#queue.length && (n === 0 || size + this.#queue[n]!.length <= BATCH_BYTES)) {
        size += this.#queue[n++]!.length;
      }
      const lines = this.#queue.splice(0, n);
      const batch = lines.length === 1 ? lines[0]! : join(lines, size);
      try {
        let off = 0;
        while (off < batch.length) off += await this.#sink.write(batch.subarray(off));
      } catch {
        // BrokenPipe, a closed descriptor: nowhere to say it.
        this.#dropped += lines.length;
      } finally {
        this.#queued -= size;
      }
    }
  }
}

function join(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
