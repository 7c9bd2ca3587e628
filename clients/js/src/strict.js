/**
 * What @msgpack/msgpack does not check and SPEC §4 requires: one pass over the raw bytes that
 * refuses ext types (the timestamp too), non-string and duplicate map keys, invalid UTF-8,
 * oversized containers, excessive nesting, truncation and trailing bytes. It also reports where
 * floats sit near the top of the frame, because after decoding a float 1.0 and an int 1 are the
 * same JavaScript number while SPEC says an `int` field never holds a float.
 */

/** Caps on containers anywhere in a frame (SPEC §11). */
export const MAX_ARRAY_LEN = 4096;
export const MAX_MAP_LEN = 1024;
/** The msgpack parser's own nesting limit (the Python reference's unpacker stack). */
const MAX_STACK = 1024;
/** Floats are reported down to this depth: frame fields, nested chat.msg fields, list items. */
const FLOAT_PATH_DEPTH = 3;
/** Joins the keys of a path to a float (e.g. "messages" SEP "0" SEP "offset"). */
export const SEP = "\u0001";

const utf8 = new TextDecoder("utf-8", { fatal: true });

class Malformed extends Error {}

/**
 * Check `bytes` is exactly one msgpack value under SPEC §4's rules.
 * @param {Uint8Array} bytes
 * @param {number} maxLen longest str or bin accepted (the frame cap)
 * @returns {Set<string>} paths (keys joined by SEP) of float values down to depth 3
 * @throws {Error} with a human message when the bytes are refused
 */
export function checkStrict(bytes, maxLen) {
  let pos = 0;
  /** @type {Set<string>} */
  const floats = new Set();

  /** @param {number} n */
  const take = (n) => {
    if (pos + n > bytes.length) throw new Malformed("truncated");
    const at = pos;
    pos += n;
    return at;
  };
  /** @param {number} n */
  const uint = (n) => {
    const at = take(n);
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + bytes[at + i];
    return v;
  };
  /** @param {number} n */
  const text = (n) => {
    if (n > maxLen) throw new Malformed("string too long");
    const at = take(n);
    try {
      return utf8.decode(bytes.subarray(at, at + n));
    } catch {
      throw new Malformed("invalid UTF-8");
    }
  };

  /** @returns {string} the key of a map entry */
  const key = () => {
    const b = uint(1);
    if (b >= 0xa0 && b <= 0xbf) return text(b & 0x1f);
    if (b === 0xd9) return text(uint(1));
    if (b === 0xda) return text(uint(2));
    if (b === 0xdb) return text(uint(4));
    throw new Malformed("map keys must be strings");
  };

  /**
   * @param {number} depth
   * @param {string | null} path where this value sits, while shallow enough to matter
   */
  const value = (depth, path) => {
    if (depth > MAX_STACK) throw new Malformed("nested too deep");
    const b = uint(1);
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return;
    if (b >= 0x80 && b <= 0x8f) return map(b & 0x0f, depth, path);
    if (b >= 0x90 && b <= 0x9f) return array(b & 0x0f, depth, path);
    if (b >= 0xa0 && b <= 0xbf) return void text(b & 0x1f);
    switch (b) {
      case 0xc4: case 0xc5: case 0xc6: {
        const n = uint(b === 0xc4 ? 1 : b === 0xc5 ? 2 : 4);
        if (n > maxLen) throw new Malformed("bin too long");
        take(n);
        return;
      }
      case 0xca: case 0xcb:
        if (path !== null) floats.add(path);
        take(b === 0xca ? 4 : 8);
        return;
      case 0xcc: case 0xd0: take(1); return;
      case 0xcd: case 0xd1: take(2); return;
      case 0xce: case 0xd2: take(4); return;
      case 0xcf: case 0xd3: take(8); return;
      case 0xd9: text(uint(1)); return;
      case 0xda: text(uint(2)); return;
      case 0xdb: text(uint(4)); return;
      case 0xdc: return array(uint(2), depth, path);
      case 0xdd: return array(uint(4), depth, path);
      case 0xde: return map(uint(2), depth, path);
      case 0xdf: return map(uint(4), depth, path);
      default: // 0xc1 (never used), ext 0xc7-0xc9 and fixext 0xd4-0xd8
        throw new Malformed(b === 0xc1 ? "byte 0xc1 is never used" : "ext types are not allowed");
    }
  };

  /**
   * @param {number} n
   * @param {number} depth
   * @param {string | null} path
   */
  const map = (n, depth, path) => {
    if (n > MAX_MAP_LEN) throw new Malformed(`map of ${n} entries`);
    /** @type {Set<string>} */
    const keys = new Set();
    for (let i = 0; i < n; i++) {
      const k = key();
      if (keys.has(k)) throw new Malformed("duplicate map key");
      keys.add(k);
      value(depth + 1, child(path, k, depth));
    }
  };

  /**
   * @param {number} n
   * @param {number} depth
   * @param {string | null} path
   */
  const array = (n, depth, path) => {
    if (n > MAX_ARRAY_LEN) throw new Malformed(`array of ${n} items`);
    for (let i = 0; i < n; i++) value(depth + 1, child(path, String(i), depth));
  };

  value(0, "");
  if (pos !== bytes.length) throw new Malformed(`${bytes.length - pos} trailing bytes`);
  return floats;
}

/**
 * @param {string | null} path
 * @param {string} key
 * @param {number} depth of the container holding `key`
 */
function child(path, key, depth) {
  if (path === null || depth >= FLOAT_PATH_DEPTH) return null;
  return path === "" ? key : path + SEP + key;
}
