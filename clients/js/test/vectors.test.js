// Every vector of protocol/vectors.json (SPEC §16): valid frames decode to the vector's frame and
// encode back to its bytes exactly; invalid ones are refused with the vector's code and request id.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { decode, encode, FrameError } from "../src/index.js";

const VECTORS = JSON.parse(readFileSync(new URL("../../../protocol/vectors.json", import.meta.url), "utf8"));
const valid = VECTORS.filter((/** @type {any} */ v) => "frame" in v);
const invalid = VECTORS.filter((/** @type {any} */ v) => "error" in v);

/** @param {string} hex */
const bytes = (hex) => Uint8Array.from(Buffer.from(hex, "hex"));
/** @param {Uint8Array} b */
const hex = (b) => Buffer.from(b).toString("hex");

test("the vector file has valid and invalid vectors in both directions", () => {
  assert.ok(valid.length >= 40 && invalid.length >= 30, `${valid.length} valid, ${invalid.length} invalid`);
  assert.deepEqual(new Set(VECTORS.map((/** @type {any} */ v) => v.direction)), new Set(["client", "server"]));
});

for (const v of valid) {
  test(`valid ${v.direction}: ${v.name}`, () => {
    const frame = decode(bytes(v.hex), { direction: v.direction });
    assert.deepEqual(frame, v.frame);
    assert.equal(hex(encode(v.frame)), v.hex);
    assert.equal(hex(encode(frame)), v.hex);
  });
}

for (const v of invalid) {
  test(`invalid ${v.direction}: ${v.name} is refused with ${v.error}`, () => {
    assert.throws(() => decode(bytes(v.hex), { direction: v.direction }), (/** @type {unknown} */ err) => {
      assert.ok(err instanceof FrameError, String(err));
      assert.equal(err.code, v.error, err.message);
      assert.equal(err.requestId, v.request_id, err.message);
      return true;
    });
  });
}
