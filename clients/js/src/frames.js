/**
 * The frames of protocol version 1 (SPEC §10) as data: for each type its fields in declaration
 * order, their defaults and validators, and the direction it travels. codec.js encodes and decodes
 * with these tables; they mirror protocol/frames.py and the rules of protocol/codec.py.
 */

import { ErrorCode } from "./errors.js";
import { SEP } from "./strict.js";

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
const UINT32_MAX = 2 ** 32 - 1;
const MAX_DEPTH = 16;
const MAX_CHAT_BODY = 4000;

const CHANNEL_RE = /^(room|user|post|online):[A-Za-z0-9_-]{1,64}$/;
const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** A field value failed its rule; `code` is 103 unless said otherwise. */
export class FieldError extends Error {
  /**
   * @param {string} message
   * @param {number} [code]
   */
  constructor(message, code = ErrorCode.INVALID_FIELD) {
    super(message);
    this.code = code;
  }
}

/**
 * Where a value sits and which values were msgpack floats (see strict.js).
 * @typedef {{path: string, floats: Set<string>}} Where
 */

/**
 * A validator: returns the accepted value or throws FieldError.
 * @typedef {(value: unknown, where: Where) => unknown} Validator
 */

/** @param {unknown} v */
const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);

/**
 * @param {Where} where
 * @param {string} key
 * @returns {Where}
 */
const inside = (where, key) => ({ path: where.path + SEP + key, floats: where.floats });

/**
 * @param {number | bigint} lo
 * @param {number | bigint} hi
 * @returns {Validator}
 */
export function int(lo = INT64_MIN, hi = INT64_MAX) {
  return (v, where) => {
    const integer = (typeof v === "number" && Number.isInteger(v) && !where.floats.has(where.path))
      || typeof v === "bigint";
    if (!integer) throw new FieldError(`expected an integer, got ${describe(v, where)}`);
    const big = BigInt(/** @type {number | bigint} */ (v));
    if (big < BigInt(lo) || big > BigInt(hi)) throw new FieldError(`integer ${v} outside [${lo}, ${hi}]`);
    return v;
  };
}

/**
 * @param {unknown} v
 * @param {Where} where
 */
function describe(v, where) {
  if (typeof v === "number" && where.floats.has(where.path)) return "float";
  if (v === null) return "nil";
  if (Array.isArray(v)) return "array";
  if (v instanceof Uint8Array) return "bin";
  return typeof v;
}

/**
 * A string of `lo`..`hi` Unicode code points.
 * @param {number} lo
 * @param {number} hi
 * @param {{pattern?: RegExp, choices?: readonly string[]}} [rules]
 * @returns {Validator}
 */
export function str(lo = 0, hi = 256, rules = {}) {
  return (v, where) => {
    if (typeof v !== "string") throw new FieldError(`expected a string, got ${describe(v, where)}`);
    const length = codePoints(v);
    if (length < lo || length > hi) throw new FieldError(`string length ${length} outside [${lo}, ${hi}]`);
    if (rules.pattern && !rules.pattern.test(v)) throw new FieldError(`${JSON.stringify(v.slice(0, 80))} is not well formed`);
    if (rules.choices && !rules.choices.includes(v)) {
      throw new FieldError(`${JSON.stringify(v.slice(0, 80))} is not one of ${rules.choices.join(", ")}`);
    }
    return v;
  };
}

/** @param {string} s */
function codePoints(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** @type {Validator} */
const bool = (v, where) => {
  if (typeof v !== "boolean") throw new FieldError(`expected a boolean, got ${describe(v, where)}`);
  return v;
};

/**
 * @param {Validator} item
 * @param {number} lo
 * @param {number} hi
 * @returns {Validator}
 */
function list(item, lo, hi) {
  return (v, where) => {
    if (!Array.isArray(v)) throw new FieldError(`expected an array, got ${describe(v, where)}`);
    if (v.length < lo || v.length > hi) throw new FieldError(`array length ${v.length} outside [${lo}, ${hi}]`);
    return v.map((x, i) => item(x, inside(where, String(i))));
  };
}

/**
 * @param {Validator} key
 * @param {Validator} value
 * @param {number} hi
 * @returns {Validator}
 */
function dict(key, value, hi) {
  return (v, where) => {
    if (!isMap(v)) throw new FieldError(`expected a map, got ${describe(v, where)}`);
    const entries = Object.entries(/** @type {object} */ (v));
    if (entries.length > hi) throw new FieldError(`map of ${entries.length} entries, at most ${hi}`);
    /** @type {Record<string, unknown>} */
    const out = {};
    for (const [k, x] of entries) out[/** @type {string} */ (key(k, where))] = value(x, inside(where, k));
    return out;
  };
}

/**
 * Any msgpack value, nested at most 16 levels (SPEC §4 `any`).
 * @param {unknown} v
 * @param {number} depth
 */
function checkAny(v, depth) {
  if (v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "string") return;
  if (v instanceof Uint8Array) return;
  if (typeof v === "bigint") {
    if (v < INT64_MIN || v > INT64_MAX) throw new FieldError("integer outside int64");
    return;
  }
  if (depth >= MAX_DEPTH) throw new FieldError(`value nested deeper than ${MAX_DEPTH}`);
  if (Array.isArray(v)) {
    for (const x of v) checkAny(x, depth + 1);
    return;
  }
  if (isMap(v)) {
    for (const x of Object.values(/** @type {object} */ (v))) checkAny(x, depth + 1);
    return;
  }
  throw new FieldError(`unsupported value of type ${typeof v}`);
}

/** @type {Validator} */
const any = (v) => {
  checkAny(v, 0);
  return v;
};

/** @type {Validator} */
const anyMap = (v, where) => {
  if (!isMap(v)) throw new FieldError(`expected a map, got ${describe(v, where)}`);
  checkAny(v, 0);
  return v;
};

/** Python's str.isspace() characters: the server's notion of "only whitespace". */
const ONLY_SPACE = /^[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

/** @type {Validator} */
const chatBody = (v, where) => {
  if (typeof v !== "string") throw new FieldError(`expected a string, got ${describe(v, where)}`);
  const length = codePoints(v);
  if (length > MAX_CHAT_BODY) {
    throw new FieldError(`chat body of ${length} characters, at most ${MAX_CHAT_BODY}`, ErrorCode.MESSAGE_TOO_LARGE);
  }
  if (ONLY_SPACE.test(v)) throw new FieldError("chat body is empty");
  return v;
};

/**
 * "" (meaning "none") or what `check` accepts.
 * @param {Validator} check
 * @returns {Validator}
 */
const orEmpty = (check) => (v, where) => (v === "" ? v : check(v, where));

const ID = int(0, UINT32_MAX);
const REQUEST_ID = int(1, UINT32_MAX);
const SHORT_ID = str(1, 64);
const CHANNEL = str(0, 256, { pattern: CHANNEL_RE });
const ROOM = str(0, 256, { pattern: ROOM_RE });
const EPOCH = str(1, 64);
const OFFSET = int(0);
const DURABLE_OFFSET = int(1);
const POSITION_OFFSET = int(-1);
const TS = int(0);
const RECEIPT_KIND = str(0, 256, { choices: ["delivered", "read"] });
const TARGET_KIND = str(0, 256, { choices: ["post", "message"] });

/** Required: the field has no default. */
const REQUIRED = Symbol("required");

/**
 * @typedef {{name: string, fallback: unknown, check: Validator}} FieldSpec
 * @typedef {{type: string, fields: FieldSpec[], byName: Map<string, FieldSpec>, required: string[],
 *            strictKeys: boolean, client: boolean, server: boolean}} FrameSpec
 */

/**
 * @param {string} name
 * @param {Validator} check
 * @param {unknown} [fallback] the default value; none means the field is required
 * @returns {FieldSpec}
 */
function field(name, check, fallback = REQUIRED) {
  return { name, fallback, check: fallback === "" ? orEmpty(check) : check };
}

/**
 * @param {string} type
 * @param {"client" | "server" | "both"} direction
 * @param {FieldSpec[]} fields
 * @returns {FrameSpec}
 */
function frame(type, direction, fields) {
  return {
    type,
    fields,
    byName: new Map(fields.map((f) => [f.name, f])),
    required: fields.filter((f) => f.fallback === REQUIRED).map((f) => f.name),
    strictKeys: type !== "hello", // a newer client may offer more in hello (SPEC §14)
    client: direction !== "server",
    server: direction !== "client",
  };
}

/** Durable events carry ch, epoch, offset, mid (SPEC §8). */
const position = () => [field("ch", CHANNEL), field("epoch", EPOCH), field("offset", DURABLE_OFFSET), field("mid", SHORT_ID)];

/** @type {Validator} */
const nestedChatMessage = (v, where) => {
  if (!isMap(v) || /** @type {Record<string, unknown>} */ (v).t !== "chat.msg") throw new FieldError("expected a chat.msg map");
  return buildFrame(CHAT_MSG, /** @type {Record<string, unknown>} */ (v), where);
};

const CHAT_MSG = frame("chat.msg", "server", [
  ...position(), field("room", ROOM), field("sender", SHORT_ID), field("cmid", SHORT_ID), field("body", chatBody),
  field("reply_to", SHORT_ID, ""), field("ts", TS, 0),
]);

/** Every frame type, in SPEC §10 order. */
export const FRAMES = [
  frame("ping", "both", [field("id", ID, 0)]),
  frame("pong", "both", [field("id", ID, 0)]),
  // client to server
  frame("hello", "client", [
    field("versions", list(int(1, 65535), 1, 16), [1]), field("token", str(0, 4096), ""), field("client", str(0, 128), ""),
  ]),
  frame("sub", "client", [
    field("id", REQUEST_ID), field("ch", CHANNEL), field("epoch", EPOCH, ""), field("offset", POSITION_OFFSET, -1),
    field("presence", bool, false),
  ]),
  frame("unsub", "client", [field("id", REQUEST_ID), field("ch", CHANNEL)]),
  frame("pub", "client", [field("id", REQUEST_ID), field("ch", CHANNEL), field("key", SHORT_ID), field("data", any, null)]),
  frame("typing", "client", [field("ch", CHANNEL), field("active", bool, true)]),
  frame("presence.hb", "client", [field("status", str(0, 256, { choices: ["online", "away"] }), "online")]),
  frame("presence.get", "client", [field("id", REQUEST_ID), field("ch", CHANNEL)]),
  frame("react", "client", [
    field("id", REQUEST_ID), field("target_kind", TARGET_KIND), field("target_id", SHORT_ID), field("emoji", str(1, 16)),
    field("on", bool, true),
  ]),
  frame("chat.send", "client", [
    field("id", REQUEST_ID), field("room", ROOM), field("cmid", SHORT_ID), field("body", chatBody), field("reply_to", SHORT_ID, ""),
  ]),
  frame("chat.history", "client", [
    field("id", REQUEST_ID), field("room", ROOM), field("before", int(-1), -1), field("limit", int(1, 100), 50),
  ]),
  frame("chat.receipt", "client", [field("room", ROOM), field("offset", OFFSET), field("kind", RECEIPT_KIND, "read")]),
  // server to client
  frame("welcome", "server", [
    field("version", int(1, 65535)), field("session", str(1, 128)), field("user", SHORT_ID), field("node", str(1, 128)),
    field("ping_interval_ms", int(1, 3_600_000)), field("max_frame", int(1024, 2 ** 31 - 1)),
  ]),
  frame("sub.ok", "server", [
    field("id", ID), field("ch", CHANNEL), field("epoch", EPOCH), field("offset", OFFSET), field("recovered", bool, true),
  ]),
  frame("unsub.ok", "server", [field("id", ID), field("ch", CHANNEL)]),
  frame("ack", "server", [field("id", ID), field("ch", CHANNEL, ""), field("offset", POSITION_OFFSET, -1), field("mid", SHORT_ID, "")]),
  frame("event", "server", [...position(), field("sender", SHORT_ID), field("data", any, null), field("ts", TS, 0)]),
  CHAT_MSG,
  frame("chat.ack", "server", [
    field("id", ID), field("room", ROOM), field("cmid", SHORT_ID), field("mid", SHORT_ID), field("offset", DURABLE_OFFSET),
    field("ts", TS),
  ]),
  frame("chat.page", "server", [
    field("id", ID), field("room", ROOM), field("messages", list(nestedChatMessage, 0, 200), []), field("more", bool, false),
  ]),
  frame("chat.receipt.ev", "server", [
    field("ch", CHANNEL), field("room", ROOM), field("user", SHORT_ID), field("offset", OFFSET), field("kind", RECEIPT_KIND),
  ]),
  frame("presence.snap", "server", [
    field("ch", CHANNEL), field("users", list(SHORT_ID, 0, 1000), []), field("count", int(0), 0), field("truncated", bool, false),
    field("id", ID, 0),
  ]),
  frame("presence.join", "server", [field("ch", CHANNEL), field("user", SHORT_ID)]),
  frame("presence.leave", "server", [field("ch", CHANNEL), field("user", SHORT_ID)]),
  frame("typing.ev", "server", [field("ch", CHANNEL), field("user", SHORT_ID), field("active", bool, true)]),
  frame("react.counts", "server", [
    field("ch", CHANNEL), field("target_kind", TARGET_KIND), field("target_id", SHORT_ID),
    field("counts", dict(str(1, 16), int(0), 64), {}),
  ]),
  frame("feed", "server", [...position(), field("kind", str(1, 64)), field("data", anyMap, {}), field("ts", TS, 0)]),
  frame("media", "server", [
    ...position(), field("upload", SHORT_ID),
    field("phase", str(0, 256, { choices: ["received", "progress", "good_enough", "upgraded", "failed"] })),
    field("post", SHORT_ID, ""), field("data", anyMap, {}), field("ts", TS, 0),
  ]),
  frame("drain", "server", [field("reconnect_after_ms", int(0, 3_600_000)), field("reason", str(0, 256), "shutdown")]),
  frame("disconnect", "server", [
    field("code", int(1000, 4999)), field("reason", str(0, 256)), field("reconnect", bool, true),
    field("reconnect_after_ms", int(0, 3_600_000), 0),
  ]),
  frame("error", "server", [field("code", int(0, 65535)), field("message", str(0, 1024)), field("id", ID, 0), field("ch", CHANNEL, "")]),
];

/** @type {Map<string, FrameSpec>} */
export const BY_TYPE = new Map(FRAMES.map((f) => [f.type, f]));
/** Types of durable events: they carry a channel position and a `mid`. */
export const DURABLE_TYPES = new Set(["event", "chat.msg", "feed", "media"]);

/**
 * Validate the fields of one decoded map against `spec`; the frame with every field, defaults
 * filled in, `t` first.
 * @param {FrameSpec} spec
 * @param {Record<string, unknown>} obj
 * @param {Where} where of `obj` itself
 * @returns {import("./codec.js").Frame}
 */
export function buildFrame(spec, obj, where) {
  /** @type {Record<string, unknown>} */
  const values = {};
  for (const [name, value] of Object.entries(obj)) {
    if (name === "t") continue;
    const f = spec.byName.get(name);
    if (f === undefined) {
      if (spec.strictKeys) throw new FieldError(`${spec.type}: unknown field ${JSON.stringify(name.slice(0, 64))}`);
      continue;
    }
    try {
      values[name] = f.check(value, where.path === "" ? { path: name, floats: where.floats } : inside(where, name));
    } catch (exc) {
      if (exc instanceof FieldError) throw new FieldError(`${spec.type}.${name}: ${exc.message}`, exc.code);
      throw exc;
    }
  }
  const missing = spec.required.filter((name) => !(name in values));
  if (missing.length) throw new FieldError(`${spec.type}: missing field ${missing.sort().join(", ")}`);
  /** @type {import("./codec.js").Frame} */
  const out = { t: spec.type };
  for (const f of spec.fields) out[f.name] = f.name in values ? values[f.name] : copyDefault(f.fallback);
  if (spec.type === "sub" && (out.epoch === "") !== (out.offset === -1)) {
    throw new FieldError("sub: epoch and offset must be given together");
  }
  if (spec.type === "chat.msg" && out.ch !== "room:" + out.room) throw new FieldError("chat.msg: ch must be room:<room>");
  return out;
}

/** @param {unknown} v */
function copyDefault(v) {
  if (Array.isArray(v)) return [...v];
  if (isMap(v)) return { ...(/** @type {object} */ (v)) };
  return v;
}
