// The codec beyond the vectors: wide integers, floats in data, sizes, what encode refuses.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decode, encode, FrameError } from "../src/index.js";

test("integers beyond 2**53 decode as BigInt and re-encode to the same bytes", () => {
  const frame = { t: "event", ch: "room:r", epoch: "e", offset: 1, mid: "m", sender: "u", data: { big: 2n ** 62n, neg: -(2n ** 60n) }, ts: 0 };
  const bytes = encode(frame);
  const back = decode(bytes);
  assert.equal(back.data.big, 2n ** 62n);
  assert.equal(back.data.neg, -(2n ** 60n));
  assert.deepEqual(encode(back), bytes);
});

test("a millisecond timestamp (uint64 on the wire) is a plain number", () => {
  const ack = { t: "chat.ack", id: 1, room: "r", cmid: "c", mid: "m", offset: 3, ts: 1764072001000 };
  const bytes = encode(ack);
  assert.equal(bytes[bytes.length - 9], 0xcf, "uint64, as the Python encoder writes it");
  assert.deepEqual(decode(bytes), ack);
});

test("floats stay floats inside data, and a float where an int belongs is refused", () => {
  const bytes = encode({ t: "pub", id: 1, ch: "room:r", key: "k", data: [1.5, 2] });
  assert.deepEqual(decode(bytes, { direction: "client" }).data, [1.5, 2]);
  const withFloatId = Uint8Array.from([0x82, 0xa1, 0x74, 0xa4, ...Buffer.from("ping"), 0xa2, 0x69, 0x64, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
  assert.throws(() => decode(withFloatId), (/** @type {any} */ e) => e instanceof FrameError && e.code === 103);
});

test("frames above the cap are refused before parsing; non-bytes are not frames", () => {
  const big = encode({ t: "pub", id: 1, ch: "room:r", key: "k", data: "x".repeat(2000) });
  assert.throws(() => decode(big, { direction: "client", maxFrame: 1024 }), (/** @type {any} */ e) => e.code === 101);
  assert.throws(() => decode(/** @type {any} */ ("hello")), (/** @type {any} */ e) => e.code === 100);
});

test("encode refuses an object that is not a frame", () => {
  assert.throws(() => encode({ t: "nope" }), TypeError);
});

test("an unknown key is refused with the frame's request id", () => {
  const bytes = encode({ t: "pong", id: 2 });
  const extra = Uint8Array.from([0x83, ...bytes.subarray(1), 0xa1, 0x78, 0x01]);
  assert.throws(() => decode(extra), (/** @type {any} */ e) => e.code === 103 && e.requestId === 2);
});
