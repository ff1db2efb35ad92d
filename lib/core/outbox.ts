/**
 * Outgoing frames of one connection, corked until the end of the tick: everything sent to a
 * connection in one tick leaves in one socket write. Small payloads are copied behind their
 * headers into a pooled buffer; large ones the caller hands over go out by reference (on a
 * transport whose writes complete in the call, only those whose frame is over 64 KiB). A
 * client's outbox masks every frame as it copies it in (RFC 6455 §5.3), so nothing goes by
 * reference there; its larger frames, and those that follow them in the tick, are framed in
 * WebAssembly memory, where masking takes SIMD instructions.
 *
 * @module
 */
import { headerSize, writeHeader } from "../protocol/frame_writer.ts";
import { maskInto, SimdMaskMemory } from "../protocol/mask.ts";
import type { MaskKeySource } from "../protocol/mask_keys.ts";
import type { Transport } from "./transport.ts";

/** Payloads from this size on, when the caller gives them up, are sent without a copy. */
export const ZERO_COPY_THRESHOLD = 16 * 1024;
// Buffers that corked frames are framed into. A connection takes one at its first write in a
// tick and returns it after the flush, so an idle connection holds none. The first is small: a
// broadcast makes every subscriber cork a frame in the same tick, and 1,000 subscribers with a
// 64 KiB buffer each made 64 MB of garbage per broadcast (bench/fanout_overload.ts); a tick
// that needs more moves up to a large buffer.
const SMALL = 4 * 1024;
const MEDIUM = 16 * 1024;
// Room for a 64 KiB payload, its header, and the padding that aligns it (see writeFrame).
const LARGE = 64 * 1024 + 32;
/** Payloads from this size on are copied to an offset aligned like their source. */
const ALIGN_FROM = 4 * 1024;
const smallPool: Uint8Array[] = [];
const mediumPool: Uint8Array[] = [];
const largePool: Uint8Array[] = [];
const SMALL_POOL_LIMIT = 1024;
// A fan-out whose subscribers each outgrow the small buffer in one tick (a few 1 KiB messages)
// moves every one of them up at once: a pool of 16 made most of those buffers garbage, and one
// of 1,024 kept 16 MiB after a burst (fanout_overload's resume scenario on Bun: peak 66 -> 75
// MiB); 256 keeps at most 4 MiB (70 MiB).
const MEDIUM_POOL_LIMIT = 256;
// Large buffers fill up when many connections send 64 KiB messages in the same tick (a
// client's masked echo: 16 connections x a few each): at most 4 MiB kept.
const LARGE_POOL_LIMIT = 64;
const dirty: Outbox[] = [];
let flushScheduled = false;

// The tick's shared frames. A broadcast's frame (under ZERO_COPY_THRESHOLD) is copied here once
// per tick, whatever the number of subscribers; a subscriber whose tick holds only shared frames
// that sit side by side here (the same topic's publishes, in order) writes a view of this buffer
// instead of copying them into a buffer of its own. A transport whose writes complete in the
// call (Bun) gets the view as reusable (it copies what the socket does not take), and the arena
// is reused tick after tick; one that writes later (Deno) would copy every view, so it gets the
// view to keep, and the next tick starts a new arena, sized to this one's use.
const ARENA_MIN = 16 * 1024;
const ARENA_MIN_KEPT = 1024;
// An arena that grew past this for a burst is let go at the end of the tick.
const ARENA_KEEP = 1024 * 1024;
let arena: Uint8Array = new Uint8Array(0);
let arenaEnd = 0;
/** A transport kept a view of this tick's arena. */
let arenaKept = false;
/** The size a new arena starts at. */
let arenaStart = ARENA_MIN;
// The last two frames placed this tick, and where: a publish hands the same frame to every
// subscriber in turn, and a topic with compressing and plain subscribers alternates two.
let lastFrame: Uint8Array | undefined;
let lastStart = 0;
let otherFrame: Uint8Array | undefined;
let otherStart = 0;
// The last view of the arena handed to a transport: under a fan-out every subscriber writes the
// same run, and one view object serves them all (1,000 subscribers made 1,000 views a tick).
let lastView: Uint8Array | undefined;

// A client's larger payloads are masked in WebAssembly memory (SIMD: a fraction of maskInto's
// word loop, bench/mask_into_bench.ts), one frame after the other through the tick: the frames
// an outbox corks in a row are contiguous there, and leave in one write. The memory is written
// to transports as reusable, so nothing views it after the tick's flush, and only then does it
// grow, to what the tick wanted (up to SIMD_MAX): WebAssembly empties the views of the old
// bytes when it grows. A frame that does not fit goes the way it would without it.
/**
 * A client's frame with a payload of this size or more goes to the SIMD memory (and so do the
 * smaller ones that follow it in the tick).
 */
export const SIMD_FROM = 256;
const SIMD_MIN = 1024 * 1024;
const SIMD_MAX = 8 * 1024 * 1024;
/** The SIMD memory: undefined until the first large masked frame, null where it is missing. */
let simd: SimdMaskMemory | null | undefined;
/** Bytes of the SIMD memory used this tick. */
let simdEnd = 0;
/** Bytes the tick's frames wanted there, fitting or not. */
let simdWanted = 0;
/**
 * Copies of 4 KiB or more into memory whose address is 1 to 31 bytes above the source's, modulo
 * 4096, run at a tenth of their usual speed on some x86 processors (the loads wait on the
 * stores they seem to alias). Large arrays start on a page in Bun, so a payload's place
 * modulo 4096 is known there: payloads are placed clear of that window (with margin).
 */
const ALIAS_WINDOW = 64;
/**
 * A transport that writes later copies a reusable chunk of up to 64 KiB into a pooled buffer,
 * a larger one into fresh memory, zeroed first (lib/runtime/deno.ts): runs of the SIMD memory
 * go to it in pieces of this size.
 */
const STAGED_PIECE = 64 * 1024;

/** Where `frame` sits in this tick's arena, copied there if it is not yet. */
function place(frame: Uint8Array): number {
  if (frame === lastFrame) return lastStart;
  if (frame === otherFrame) {
    otherFrame = lastFrame;
    const start = otherStart;
    otherStart = lastStart;
    lastFrame = frame;
    return lastStart = start;
  }
  const length = frame.length;
  if (arenaEnd + length > arena.length) {
    const bigger = new Uint8Array(Math.max(arenaStart, 2 * arena.length, arenaEnd + length));
    bigger.set(arena.subarray(0, arenaEnd));
    arena = bigger;
  }
  arena.set(frame, arenaEnd);
  otherFrame = lastFrame;
  otherStart = lastStart;
  lastFrame = frame;
  lastStart = arenaEnd;
  arenaEnd += length;
  return lastStart;
}

function flushAll(): void {
  // Index loop: a flush may cork more (it never does today, but stay correct if it does).
  for (let i = 0; i < dirty.length; i++) {
    try {
      dirty[i].flush();
    } catch (error) {
      // A bug, but it must not leave the other outboxes unflushed and every later tick with
      // no flush scheduled.
      console.error("sluice: an outbox flush failed", error);
    }
  }
  dirty.length = 0;
  flushScheduled = false;
  // Every outbox that viewed the arena was dirty, and has flushed: it is free again, unless a
  // transport kept a view.
  if (arenaKept) {
    arenaKept = false;
    arenaStart = Math.max(ARENA_MIN_KEPT, arenaEnd);
    arena = new Uint8Array(0);
  } else {
    arenaStart = ARENA_MIN;
    if (arena.length > ARENA_KEEP) arena = new Uint8Array(0);
  }
  arenaEnd = 0;
  lastFrame = otherFrame = lastView = undefined;
  if (simdWanted > 0) {
    // Nothing views the SIMD memory now: it may grow.
    if (simdWanted > simdEnd && simd) simd.grow(Math.min(simdWanted, SIMD_MAX));
    simdEnd = simdWanted = 0;
  }
}

/** The SIMD memory, made at the first call (null where WebAssembly SIMD is missing). */
function simdMemory(): SimdMaskMemory | null {
  return simd ??= SimdMaskMemory.create(SIMD_MIN) ?? null;
}

/** A view of `arena[start, end)`, the last one made if it is the same run. */
function arenaView(start: number, end: number): Uint8Array {
  const view = lastView;
  if (
    view !== undefined && view.buffer === arena.buffer && view.byteOffset === start &&
    view.length === end - start
  ) {
    return view;
  }
  return lastView = arena.subarray(start, end);
}

/** Who an outbox tells that a flush handed its frames to the transport. */
export interface OutboxOwner {
  /** A flush handed everything corked to the transport. */
  outboxFlushed(): void;
}

/** The corked frames of one connection. */
export class Outbox {
  #transport: Transport;
  #buffer: Uint8Array | undefined;
  #start = 0;
  #end = 0;
  #segments: Uint8Array[] | undefined;
  /** For each segment: it ends inside a frame (with the header of a payload sent apart). */
  #partial: boolean[] | undefined;
  /**
   * A large shared frame (a broadcast's) that is all this tick has corked so far: it goes to
   * the transport by reference, with no copy into our buffer. A second frame copies it in.
   */
  #lone: Uint8Array | undefined;
  /**
   * Small shared frames that are all this tick has corked so far, side by side in the arena:
   * `arena[#runStart, #runEnd)`, written as a view of it. −1: none.
   */
  #runStart = -1;
  #runEnd = 0;
  #owner: OutboxOwner | undefined;
  /** Full buffers of this tick that are segments now, back to their pool after the flush. */
  #spent: Uint8Array[] | undefined;
  /** A client's: every frame is masked with the next key. */
  #masks: MaskKeySource | undefined;
  /** Frames corked in a row in the SIMD memory: `simd.bytes[#simdStart, #simdEnd)`; −1: none. */
  #simdStart = -1;
  #simdEnd = 0;
  #corked = 0;
  #written = 0;
  #dirty = false;

  /**
   * Makes an empty outbox.
   *
   * @param transport Where the frames go.
   * @param owner Told after each flush has handed the corked frames to the transport.
   * @param masks A client's masking keys: every frame is masked with one of its own. Shared
   * frames ({@linkcode Outbox.writeShared}) cannot be masked and are refused then.
   */
  constructor(transport: Transport, owner?: OutboxOwner, masks?: MaskKeySource) {
    this.#transport = transport;
    this.#owner = owner;
    this.#masks = masks;
  }

  /** Bytes handed to the transport so far. */
  get written(): number {
    return this.#written;
  }

  /** Bytes corked and not yet handed to the transport. */
  get corked(): number {
    return this.#corked;
  }

  /**
   * Adds a frame; it leaves with the rest of this tick's frames.
   *
   * @param opcode The opcode.
   * @param fin The FIN bit.
   * @param rsv1 The RSV1 bit.
   * @param payload The payload.
   * @param owned Whether the outbox may keep `payload` by reference.
   */
  writeFrame(
    opcode: number,
    fin: boolean,
    rsv1: boolean,
    payload: Uint8Array,
    owned: boolean,
  ): void {
    if (this.#lone !== undefined) this.#absorbLone();
    else if (this.#runStart >= 0) this.#absorbRun();
    const length = payload.length;
    if (this.#masks !== undefined) {
      this.#writeMasked(opcode, fin, rsv1, payload);
      return;
    }
    const header = headerSize(length, false);
    // By reference, the header and the payload are two writes; a transport whose writes
    // complete in the call (Bun) does better with one, so there the payload is copied behind
    // its header while the frame fits a pooled buffer. One that writes later (Deno) would copy
    // that buffer again: it takes the payload as it is.
    if (
      owned && length >= ZERO_COPY_THRESHOLD &&
      (this.#transport.writesLater === true || header + length > LARGE)
    ) {
      this.#reserve(header);
      this.#end = writeHeader(this.#buffer!, this.#end, opcode, length, fin, rsv1);
      this.#seal();
      const partial = this.#partial!;
      partial[partial.length - 1] = true;
      this.#segments!.push(payload);
      partial.push(false);
    } else {
      // Bun copies 4 KiB or more about 15× slower between some offsets than others (64 KiB
      // from offset 0 to offset 10: 19 µs; to offset 16: 1.2 µs): a large payload that opens a
      // buffer is placed where its copy is fast, the bytes before it unsent.
      const pad = length >= ALIGN_FROM && this.#buffer === undefined
        ? (payload.byteOffset - header) & 15
        : 0;
      this.#reserve(pad + header + length);
      if (pad !== 0) this.#start = this.#end = pad;
      const buffer = this.#buffer!;
      const start = writeHeader(buffer, this.#end, opcode, length, fin, rsv1);
      buffer.set(payload, start);
      this.#end = start + length;
    }
    this.#corked += header + length;
    this.#markDirty();
  }

  /** A client's frame: header with a fresh key, the payload masked into our buffer. */
  #writeMasked(opcode: number, fin: boolean, rsv1: boolean, payload: Uint8Array): void {
    const length = payload.length;
    const header = headerSize(length, true);
    // A frame behind others of this tick in the SIMD memory goes there too, whatever its size.
    if (
      (length >= SIMD_FROM || this.#simdStart >= 0) &&
      this.#writeSimd(opcode, fin, rsv1, payload, header)
    ) {
      return;
    }
    if (this.#simdStart >= 0) this.#sealSimd();
    if (length >= ZERO_COPY_THRESHOLD && this.#transport.writesLater === true) {
      // A transport that writes later would copy a pooled buffer once more: a large frame is
      // masked into memory of its own, handed over by reference.
      const frame = new Uint8Array(header + length);
      const key = this.#masks!.next();
      maskInto(payload, key, frame, writeHeader(frame, 0, opcode, length, fin, rsv1, key));
      this.#seal();
      (this.#segments ??= []).push(frame);
      (this.#partial ??= []).push(false);
      this.#corked += header + length;
      this.#markDirty();
      return;
    }
    if (length >= ALIGN_FROM) {
      // As in writeFrame, a large payload goes where Bun copies it fast (aligned as its source,
      // modulo 16): here every one does, not only one that opens a buffer, since masking
      // copies them all. The bytes skipped are not sent: what is before them is a segment.
      this.#reserve(15 + header + length);
      const pad = (payload.byteOffset - header - this.#end) & 15;
      if (pad !== 0) {
        this.#seal();
        this.#start = this.#end += pad;
      }
    } else {
      this.#reserve(header + length);
    }
    const key = this.#masks!.next();
    const buffer = this.#buffer!;
    maskInto(payload, key, buffer, writeHeader(buffer, this.#end, opcode, length, fin, rsv1, key));
    this.#end += header + length;
    this.#corked += header + length;
    this.#markDirty();
  }

  /**
   * A client's frame in the SIMD memory, behind the frames this outbox corked there this tick
   * if it can: large payloads are masked there 16 bytes a step. False (the frame goes the other
   * way) where there is no SIMD memory, no room left in it this tick, or for a small frame that
   * would start a write of its own there.
   */
  #writeSimd(
    opcode: number,
    fin: boolean,
    rsv1: boolean,
    payload: Uint8Array,
    header: number,
  ): boolean {
    const memory = simdMemory();
    if (memory === null) return false;
    const length = payload.length;
    const bytes = memory.bytes;
    let run = this.#simdStart;
    if (run >= 0 && this.#simdEnd !== simdEnd) {
      // Others have used the memory since our last frame. A short run moves to the end, so the
      // frames keep leaving in one write; a long one becomes a segment.
      const used = this.#simdEnd - run;
      if (used <= MEDIUM && simdEnd + used <= bytes.length) {
        bytes.copyWithin(simdEnd, run, this.#simdEnd);
        simdWanted += used;
        this.#simdStart = run = simdEnd;
        this.#simdEnd = simdEnd += used;
      } else if (length >= SIMD_FROM) {
        this.#sealSimd();
        run = -1;
      } else {
        return false;
      }
    }
    // Bytes corked in our buffer and not yet a segment move in front of the frame if few.
    const pending = run >= 0 ? 0 : this.#end - this.#start;
    const move = pending <= MEDIUM ? pending : 0;
    let start = simdEnd;
    if (length >= ALIGN_FROM) {
      // The payload's distance above its source modulo 4096, if the source's buffer starts on a
      // page: out of the window the copy is fast.
      const distance = (start + move + header - payload.byteOffset) & 4095;
      if (distance < ALIAS_WINDOW) start += ALIAS_WINDOW - distance;
    }
    const end = start + move + header + length;
    simdWanted += end - simdEnd;
    if (end > bytes.length) return false;
    simdEnd = end;
    if (start !== this.#simdEnd || run < 0) {
      // A new run: what was corked before it joins it, or becomes a segment.
      if (run >= 0) this.#sealSimd();
      else if (move !== 0) {
        bytes.set(this.#buffer!.subarray(this.#start, this.#start = this.#end), start);
      } else if (pending !== 0) this.#seal();
      this.#simdStart = start;
    }
    const at = start + move;
    const key = this.#masks!.next();
    const payloadAt = writeHeader(bytes, at, opcode, length, fin, rsv1, key);
    if (length >= SIMD_FROM) {
      bytes.set(payload, payloadAt);
      memory.mask(payloadAt, length, key);
    } else {
      maskInto(payload, key, bytes, payloadAt);
    }
    this.#simdEnd = end;
    this.#corked += header + length;
    this.#markDirty();
    return true;
  }

  /** The frames corked in a row in the SIMD memory become a segment. */
  #sealSimd(): void {
    (this.#segments ??= []).push(simd!.bytes.subarray(this.#simdStart, this.#simdEnd));
    (this.#partial ??= []).push(false);
    this.#simdStart = -1;
  }

  /**
   * Adds a whole frame that is shared with other connections and does not change until the
   * end of the tick (a broadcast's). A small one is copied once per tick into the arena, for
   * every connection; a tick of nothing but consecutive shared frames is written as a view of
   * it. A large one, alone in a tick, is written by reference.
   *
   * @param frame Header and payload.
   */
  writeShared(frame: Uint8Array): void {
    if (this.#masks !== undefined) {
      throw new TypeError("Cannot write a shared frame: a client's frames are masked");
    }
    const length = frame.length;
    if (length < ZERO_COPY_THRESHOLD) {
      const start = place(frame);
      if (this.#corked === 0) {
        this.#runStart = start;
        this.#runEnd = start + length;
      } else if (this.#runStart >= 0 && start === this.#runEnd) {
        this.#runEnd += length;
      } else {
        if (this.#lone !== undefined) this.#absorbLone();
        else if (this.#runStart >= 0) this.#absorbRun();
        this.#append(frame);
      }
    } else if (this.#corked === 0) {
      this.#lone = frame;
    } else {
      if (this.#lone !== undefined) this.#absorbLone();
      else if (this.#runStart >= 0) this.#absorbRun();
      this.#append(frame);
    }
    this.#corked += length;
    this.#markDirty();
  }

  /**
   * Adds bytes that are not a frame (the opening handshake's 101 response), in order with the
   * frames corked around them: the response and the frames sent in the same tick (by `open`)
   * leave in one socket write.
   *
   * @param bytes The bytes; copied, so the caller may reuse them.
   */
  writeBytes(bytes: Uint8Array): void {
    if (this.#lone !== undefined) this.#absorbLone();
    else if (this.#runStart >= 0) this.#absorbRun();
    else if (this.#simdStart >= 0) this.#sealSimd();
    const length = bytes.length;
    this.#reserve(length);
    this.#buffer!.set(bytes, this.#end);
    this.#end += length;
    this.#corked += length;
    this.#markDirty();
  }

  /** The run of shared frames gets company: it is copied into our buffer. */
  #absorbRun(): void {
    const start = this.#runStart;
    const length = this.#runEnd - start;
    this.#runStart = -1;
    this.#reserve(length);
    this.#buffer!.set(arena.subarray(start, start + length), this.#end);
    this.#end += length;
  }

  /** The lone shared frame gets company: it takes its place among the others. */
  #absorbLone(): void {
    const lone = this.#lone!;
    this.#lone = undefined;
    this.#append(lone);
  }

  /** Adds a shared frame behind what is corked: by reference if large, else copied. */
  #append(frame: Uint8Array): void {
    if (frame.length >= ZERO_COPY_THRESHOLD) {
      this.#seal();
      (this.#segments ??= []).push(frame);
      (this.#partial ??= []).push(false);
      return;
    }
    this.#reserve(frame.length);
    this.#buffer!.set(frame, this.#end);
    this.#end += frame.length;
  }

  #markDirty(): void {
    if (this.#dirty) return;
    this.#dirty = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      queueMicrotask(flushAll);
    }
  }

  /** Hands everything corked to the transport now. */
  flush(): void {
    this.#dirty = false;
    if (this.#corked === 0) return;
    this.#written += this.#corked;
    this.#corked = 0;
    const transport = this.#transport;
    const runStart = this.#runStart;
    if (runStart >= 0) {
      this.#runStart = -1;
      const view = arenaView(runStart, this.#runEnd);
      if (transport.writesLater === true) {
        arenaKept = true;
        transport.write(view, false);
      } else {
        transport.write(view, true);
      }
      this.#owner?.outboxFlushed();
      return;
    }
    const lone = this.#lone;
    if (lone !== undefined) {
      this.#lone = undefined;
      transport.write(lone, false);
      this.#owner?.outboxFlushed();
      return;
    }
    const segments = this.#segments;
    const simdStart = this.#simdStart;
    if (simdStart >= 0 && (segments === undefined || segments.length === 0)) {
      // Only masked frames in one run of the SIMD memory, which is reused after the tick.
      this.#simdStart = -1;
      writeRun(transport, simd!.bytes.subarray(simdStart, this.#simdEnd), false);
    } else if (segments === undefined || segments.length === 0) {
      // The common case: only small frames, all in the buffer.
      transport.write(this.#buffer!.subarray(this.#start, this.#end), true);
    } else {
      if (simdStart >= 0) this.#sealSimd();
      else this.#seal();
      const partial = this.#partial!;
      const ours = this.#buffer?.buffer;
      const simdBuffer = simd?.bytes.buffer;
      const spent = this.#spent;
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i];
        // Views of our buffers and of the SIMD memory are reused after this; payloads handed
        // over are not.
        if (segment.buffer === simdBuffer) {
          writeRun(transport, segment, partial[i]);
          continue;
        }
        const reusable = segment.buffer === ours ||
          (spent !== undefined && spent.some((buffer) => buffer.buffer === segment.buffer));
        transport.write(segment, reusable, partial[i]);
      }
      segments.length = 0;
      partial.length = 0;
      if (spent !== undefined) {
        for (const buffer of spent) give(buffer);
        spent.length = 0;
      }
    }
    this.#release();
    this.#owner?.outboxFlushed();
  }

  /** Drops what is corked (the connection is being destroyed). */
  discard(): void {
    if (this.#spent !== undefined) {
      for (const buffer of this.#spent) give(buffer);
      this.#spent.length = 0;
    }
    this.#corked = 0;
    this.#lone = undefined;
    this.#runStart = -1;
    this.#simdStart = -1;
    if (this.#segments !== undefined) this.#segments.length = this.#partial!.length = 0;
    this.#release();
  }

  #release(): void {
    const buffer = this.#buffer;
    if (buffer === undefined) return;
    this.#buffer = undefined;
    this.#start = this.#end = 0;
    give(buffer);
  }

  /** Ends the current run of buffered bytes as a segment of its own. */
  #seal(): void {
    if (this.#end > this.#start) {
      (this.#segments ??= []).push(this.#buffer!.subarray(this.#start, this.#end));
      (this.#partial ??= []).push(false);
      this.#start = this.#end;
    }
  }

  #reserve(bytes: number): void {
    const buffer = this.#buffer;
    if (buffer === undefined) {
      this.#buffer = take(bytes, SMALL);
      return;
    }
    if (this.#end + bytes <= buffer.length) return;
    const used = this.#end - this.#start;
    if (
      this.#start === 0 && (this.#segments === undefined || this.#segments.length === 0) &&
      used + bytes <= LARGE
    ) {
      // Nothing else views it yet: move what it holds to the next size up, and return it, so
      // the tick still leaves in one write.
      const bigger = take(used + bytes, buffer.length === SMALL ? MEDIUM : LARGE);
      bigger.set(buffer.subarray(0, used));
      give(buffer);
      this.#buffer = bigger;
      return;
    }
    // Full: what is in it becomes a segment; framing goes on in a larger buffer.
    const sealed = this.#end > this.#start;
    this.#seal();
    if (!sealed) give(buffer);
    // A transport that writes in the call copies what it keeps of a reusable chunk: written as
    // reusable, the buffer can go back to its pool after the flush (a fresh one costs its page
    // faults at the first write into it).
    else if (this.#transport.writesLater !== true) (this.#spent ??= []).push(buffer);
    this.#buffer = take(bytes, LARGE);
    this.#start = this.#end = 0;
  }
}

/** Writes a run of the SIMD memory, which is reused: in pieces to a transport that writes later. */
function writeRun(transport: Transport, run: Uint8Array, partial: boolean): void {
  if (transport.writesLater === true) {
    let at = 0;
    for (; run.length - at > STAGED_PIECE; at += STAGED_PIECE) {
      transport.write(run.subarray(at, at + STAGED_PIECE), true, true);
    }
    if (at !== 0) run = run.subarray(at);
  }
  transport.write(run, true, partial);
}

/** Returns a buffer to its pool unless the pool is full. */
function give(buffer: Uint8Array): void {
  const length = buffer.length;
  if (length === SMALL) {
    if (smallPool.length < SMALL_POOL_LIMIT) smallPool.push(buffer);
  } else if (length === MEDIUM) {
    if (mediumPool.length < MEDIUM_POOL_LIMIT) mediumPool.push(buffer);
  } else if (length === LARGE && largePool.length < LARGE_POOL_LIMIT) {
    largePool.push(buffer);
  }
}

/** A pooled buffer for at least `bytes`, of `size` or the next size up that holds them. */
function take(bytes: number, size: number): Uint8Array {
  if (size === SMALL && bytes <= SMALL) return smallPool.pop() ?? new Uint8Array(SMALL);
  if (size <= MEDIUM && bytes <= MEDIUM) return mediumPool.pop() ?? new Uint8Array(MEDIUM);
  if (bytes <= LARGE) return largePool.pop() ?? new Uint8Array(LARGE);
  return new Uint8Array(bytes);
}
