// Backoff (SPEC §5.10): full jitter within [0, min(cap, base × 2^attempt)], the server's hint as a
// floor; endpoints set aside while down, and tried in turn when all are down.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay, Endpoints } from "../src/index.js";

test("the delay spans the whole window: 0 at random 0, the ceiling at random 1", () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 0);
  assert.equal(backoffDelay(0, { random: () => 1 }), 500);
  assert.equal(backoffDelay(3, { random: () => 1 }), 4000);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 2000);
});

test("the ceiling stops at the cap (30 s) however many attempts failed", () => {
  assert.equal(backoffDelay(6, { random: () => 1 }), 30_000);
  assert.equal(backoffDelay(500, { random: () => 1 }), 30_000);
  assert.equal(backoffDelay(9, { random: () => 1, capMs: 10_000 }), 10_000);
});

test("with Math.random the delays stay in bounds and are spread (full jitter, not equal jitter)", () => {
  for (const attempt of [0, 1, 4, 10]) {
    const ceiling = Math.min(30_000, 500 * 2 ** attempt);
    const delays = Array.from({ length: 2000 }, () => backoffDelay(attempt));
    assert.ok(delays.every((d) => d >= 0 && d <= ceiling));
    // Full jitter reaches down near 0 and up near the ceiling.
    assert.ok(Math.min(...delays) < ceiling * 0.05, `attempt ${attempt}: min ${Math.min(...delays)}`);
    assert.ok(Math.max(...delays) > ceiling * 0.95, `attempt ${attempt}: max ${Math.max(...delays)}`);
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.05, `attempt ${attempt}: mean ${mean}`);
  }
});

test("the server's reconnect_after_ms is a floor", () => {
  assert.equal(backoffDelay(0, { random: () => 0, hintMs: 2000 }), 2000);
  assert.equal(backoffDelay(8, { random: () => 1, hintMs: 2000 }), 30_000);
});

test("a down endpoint is passed over until it is up again", () => {
  const e = new Endpoints(["ws://a/ws", "ws://b/ws", "ws://c/ws"]);
  assert.equal(e.pick(), 0);
  e.markDown(0);
  assert.equal(e.pick(), 1);
  assert.equal(e.pick(2), 2);
  e.markDown(1);
  assert.equal(e.pick(), 2);
  e.markUp(0);
  assert.equal(e.pick(), 0);
  assert.equal(e.pick(1), 2);
});

test("when every endpoint is down they are tried in turn", () => {
  const e = new Endpoints(["ws://a/ws", "ws://b/ws"]);
  e.markDown(0);
  e.markDown(1);
  const picks = [e.pick(), e.pick(), e.pick(), e.pick()];
  assert.deepEqual(new Set(picks), new Set([0, 1]));
  assert.notEqual(picks[0], picks[1]);
});
