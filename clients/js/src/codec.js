/**
 * Frames to bytes and back (SPEC §4), byte for byte like protocol/codec.py.
 *
 * encode: a msgpack map, `t` first, then the fields in SPEC §10 order, fields equal to their
 * default left out, smallest int encodings, floats as float64, strings as str and Uint8Array as
 * bin. Like the reference it trusts its input (frames this client builds).
 *
 * decode: trusts nothing. The frame cap is checked before parsing, then strict.js checks what the
 * msgpack library does not (ext types, keys, UTF-8, sizes), @msgpack/msgpack decodes, and the
 * frame tables of frames.js check every field. It returns the frame with every field (defaults
 * filled in) or throws a FrameError with the SPEC §12 code and the request id when it was read.
 *
 * Integers beyond Number.MAX_SAFE_INTEGER decode as BigInt; all others as numbers. Map keys that
 * look like array indexes ("1") come first in a JavaScript object, so a `data` map holding such
 * keys re-encodes in another order than it arrived (the frame fields never do).
 */

import { Decoder, Encoder } from "@msgpack/msgpack";
import { ErrorCode, FrameError } from "./errors.js";
import { BY_TYPE, FieldError, buildFrame } from "./frames.js";
import { MAX_ARRAY_LEN, MAX_MAP_LEN, checkStrict } from "./strict.js";

/**
 * A frame: a plain object whose `t` names its type and whose other keys are SPEC §10's fields.
 * @typedef {{t: string, [field: string]: any}} Frame
 */

/** The frame cap of SPEC §3 (a server states its own in `welcome.max_frame`). */
export const DEFAULT_MAX_FRAME = 64 * 1024;
const UINT32_MAX = 2 ** 32 - 1;

// The library writes numbers beyond 32 bits as uint64/int64 only while BigInt support is off, and
// refuses BigInt then: frames holding a BigInt (rare: decoded from beyond 2**53) take the second
// encoder, with their wide numbers turned into BigInt first.
const encoder = new Encoder({ ignoreUndefined: true });
const bigIntEncoder = new Encoder({ ignoreUndefined: true, useBigInt64: true });

/** @param {unknown} v */
function containsBigInt(v) {
  if (typeof v === "bigint") return true;
  if (Array.isArray(v)) return v.some(containsBigInt);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) return Object.values(v).some(containsBigInt);
  return false;
}

/**
 * @param {unknown} v
 * @returns {unknown}
 */
function widenInts(v) {
  if (typeof v === "number" && Number.isInteger(v) && (v > 0xffffffff || v < -0x80000000)) return BigInt(v);
  if (Array.isArray(v)) return v.map(widenInts);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, widenInts(x)]));
  }
  return v;
}

/**
 * @param {unknown} a
 * @param {unknown} b
 * @returns {boolean}
 */
function sameValue(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)
      && !(a instanceof Uint8Array) && !(b instanceof Uint8Array)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length
      && ka.every((k) => sameValue(/** @type {Record<string, unknown>} */ (a)[k], /** @type {Record<string, unknown>} */ (b)[k]));
  }
  return false;
}

/**
 * The map a frame is encoded as: `t` first, fields in declaration order, defaults left out.
 * @param {Frame} frame
 * @returns {Record<string, unknown>}
 */
function asMap(frame) {
  const spec = BY_TYPE.get(frame.t);
  if (spec === undefined) throw new TypeError(`not a frame type: ${String(frame.t)}`);
  /** @type {Record<string, unknown>} */
  const out = { t: spec.type };
  for (const f of spec.fields) {
    const value = frame[f.name];
    if (value === undefined || sameValue(value, f.fallback)) continue;
    out[f.name] = f.name === "messages" ? /** @type {Frame[]} */ (value).map(asMap) : value;
  }
  return out;
}

/**
 * Encode one frame (fields not given take their defaults).
 * @param {Frame} frame
 * @returns {Uint8Array}
 */
export function encode(frame) {
  const map = asMap(frame);
  return containsBigInt(map) ? bigIntEncoder.encode(widenInts(map)) : encoder.encode(map);
}

/**
 * @param {unknown} v a decoded value whose 64-bit ints are BigInt
 * @returns {unknown}
 */
function narrowInts(v) {
  if (typeof v === "bigint") return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = narrowInts(v[i]);
  } else if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    const map = /** @type {Record<string, unknown>} */ (v);
    for (const k of Object.keys(map)) map[k] = narrowInts(map[k]);
  }
  return v;
}

/**
 * @param {ArrayBuffer | ArrayBufferView} data
 * @returns {Uint8Array | null}
 */
function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/**
 * Decode one message sent by the given side.
 * @param {ArrayBuffer | ArrayBufferView} data
 * @param {{direction?: "server" | "client", maxFrame?: number}} [options] `direction`: who sent
 *   it (a client decodes "server" frames, the default)
 * @returns {Frame}
 * @throws {FrameError}
 */
export function decode(data, { direction = "server", maxFrame = DEFAULT_MAX_FRAME } = {}) {
  const bytes = asBytes(data);
  if (bytes === null) throw new FrameError("expected bytes", ErrorCode.BAD_FRAME);
  if (bytes.length > maxFrame) throw new FrameError(`frame of ${bytes.length} bytes, at most ${maxFrame}`, ErrorCode.FRAME_TOO_LARGE);
  /** @type {Set<string>} */
  let floats;
  /** @type {unknown} */
  let obj;
  try {
    floats = checkStrict(bytes, maxFrame);
    obj = narrowInts(new Decoder({
      useBigInt64: true, maxStrLength: maxFrame, maxBinLength: maxFrame, maxArrayLength: MAX_ARRAY_LEN,
      maxMapLength: MAX_MAP_LEN, maxExtLength: 0,
    }).decode(bytes));
  } catch (exc) {
    throw new FrameError(`not a msgpack value: ${exc instanceof Error ? exc.message : String(exc)}`, ErrorCode.BAD_FRAME);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj) || obj instanceof Uint8Array) {
    throw new FrameError("frame must be a map", ErrorCode.BAD_FRAME);
  }
  const map = /** @type {Record<string, unknown>} */ (obj);
  const rid = map.id;
  const requestId = typeof rid === "number" && Number.isInteger(rid) && !floats.has("id") && rid > 0 && rid <= UINT32_MAX ? rid : 0;
  const t = map.t;
  if (typeof t !== "string") throw new FrameError("frame has no string key 't'", ErrorCode.BAD_FRAME, requestId);
  const spec = BY_TYPE.get(t);
  if (spec === undefined) throw new FrameError(`unknown frame type ${JSON.stringify(t.slice(0, 64))}`, ErrorCode.UNKNOWN_TYPE, requestId);
  if (direction === "server" ? !spec.server : !spec.client) {
    throw new FrameError(`frame type ${JSON.stringify(t)} not allowed this way`, ErrorCode.WRONG_DIRECTION, requestId);
  }
  try {
    return buildFrame(spec, map, { path: "", floats });
  } catch (exc) {
    if (exc instanceof FieldError) throw new FrameError(exc.message, exc.code, requestId);
    throw exc;
  }
}
