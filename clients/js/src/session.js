/**
 * The protocol state of one logical client across reconnects (SPEC §6, §8), without I/O: request
 * ids, the channels wanted with their last positions, and duplicate suppression of durable events
 * by `mid` and by offset. The same rules as protocol/session.py's ClientSession.
 */

import { ErrorCode } from "./errors.js";
import { DURABLE_TYPES } from "./frames.js";

/** @typedef {import("./codec.js").Frame} Frame */
/** @typedef {{epoch: string, offset: number}} Position */

/** A `sub` refused with these codes is not asked again on every reconnect. */
const REFUSED_FOR_GOOD = new Set([ErrorCode.PERMISSION_DENIED, ErrorCode.CHANNEL_NOT_FOUND]);

export class Session {
  /** @param {{dedupeSize?: number}} [options] how many recent `mid`s are remembered */
  constructor({ dedupeSize = 4096 } = {}) {
    this.dedupeSize = dedupeSize;
    /** @type {Map<string, Position>} last position seen per channel */
    this.positions = new Map();
    /** @type {Map<string, boolean>} channels wanted, with their presence flag */
    this.wanted = new Map();
    /** @type {Set<string>} channels whose history may have a hole: refetch it */
    this.stale = new Set();
    /** @type {Map<number, {ch: string, sent: Position | null}>} */
    this.subsInFlight = new Map();
    /** @type {Set<string>} insertion-ordered: the oldest is dropped first */
    this.seen = new Set();
    this.lastId = 0;
  }

  /** A fresh request id, 1..2**32-1, wrapping around. */
  nextId() {
    this.lastId = (this.lastId % 0xffffffff) + 1;
    return this.lastId;
  }

  /**
   * Want `ch` from now on: the `sub` frame to send, resuming from the known position if any.
   * @param {string} ch
   * @param {{presence?: boolean}} [options]
   * @returns {Frame}
   */
  subscribe(ch, { presence = false } = {}) {
    this.wanted.set(ch, presence);
    const pos = this.positions.get(ch) ?? null;
    const id = this.nextId();
    this.subsInFlight.set(id, { ch, sent: pos });
    /** @type {Frame} */
    const frame = { t: "sub", id, ch, presence };
    if (pos !== null) Object.assign(frame, { epoch: pos.epoch, offset: pos.offset });
    return frame;
  }

  /**
   * Stop wanting `ch`: the `unsub` frame to send.
   * @param {string} ch
   * @returns {Frame}
   */
  unsubscribe(ch) {
    this.forget(ch);
    return { t: "unsub", id: this.nextId(), ch };
  }

  /** After a (re)connect and its `welcome`: one `sub` per wanted channel, with positions. */
  resubscribe() {
    this.subsInFlight.clear();
    return [...this.wanted].map(([ch, presence]) => this.subscribe(ch, { presence }));
  }

  /**
   * Update the state from a server frame: the frame, or null for a duplicate to drop.
   * @param {Frame} frame
   * @returns {Frame | null}
   */
  receive(frame) {
    if (DURABLE_TYPES.has(frame.t)) return this.acceptDurable(frame) ? frame : null;
    if (frame.t === "sub.ok") {
      const inFlight = this.subsInFlight.get(frame.id);
      this.subsInFlight.delete(frame.id);
      const now = { epoch: frame.epoch, offset: frame.offset };
      if (!inFlight || inFlight.sent === null) {
        this.positions.set(frame.ch, now);
      } else if (!frame.recovered || frame.epoch !== inFlight.sent.epoch) {
        // The gap is gone (too old, or the stream was lost): start at the server's position;
        // the application refetches history.
        this.positions.set(frame.ch, now);
        this.stale.add(frame.ch);
      }
      // recovered: the missed events follow and move the position one by one.
    } else if (frame.t === "unsub.ok") {
      this.forget(frame.ch); // our unsub answered, or the server ended it
    } else if (frame.t === "error" && this.subsInFlight.has(frame.id)) {
      const inFlight = this.subsInFlight.get(frame.id);
      this.subsInFlight.delete(frame.id);
      if (inFlight && REFUSED_FOR_GOOD.has(frame.code)) this.forget(inFlight.ch);
    }
    return frame;
  }

  /** @param {string} ch */
  forget(ch) {
    this.wanted.delete(ch);
    this.positions.delete(ch);
    this.stale.delete(ch);
  }

  /**
   * @param {Frame} frame a durable event
   * @returns {boolean} false for a duplicate
   */
  acceptDurable(frame) {
    const { ch, epoch, offset, mid } = frame;
    if (this.seen.has(mid)) {
      this.seen.delete(mid); // seen again: keep it longer
      this.seen.add(mid);
      return false;
    }
    const pos = this.positions.get(ch);
    if (pos !== undefined && pos.epoch === epoch && offset <= pos.offset) return false;
    if (pos !== undefined && pos.epoch !== epoch) this.stale.add(ch); // the stream was lost meanwhile
    this.positions.set(ch, { epoch, offset });
    this.seen.add(mid);
    if (this.seen.size > this.dedupeSize) this.seen.delete(/** @type {string} */ (this.seen.values().next().value));
    return true;
  }
}
