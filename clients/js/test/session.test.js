// Duplicate suppression and resume positions (SPEC §8), the pure state behind Client.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Session } from "../src/index.js";

/** @param {number} offset @param {string} mid @param {string} [epoch] */
const msg = (offset, mid, epoch = "e1") => ({ t: "chat.msg", ch: "room:r", epoch, offset, mid, room: "r", sender: "u",
  cmid: "c" + mid, body: "hi", reply_to: "", ts: 0 });

test("a fresh sub takes the server's position; events move it; duplicates are dropped", () => {
  const s = new Session();
  const sub = s.subscribe("room:r");
  assert.deepEqual(sub, { t: "sub", id: 1, ch: "room:r", presence: false });
  s.receive({ t: "sub.ok", id: 1, ch: "room:r", epoch: "e1", offset: 4, recovered: true });
  assert.equal(s.receive(msg(4, "m4")), null, "at or below the position: already seen");
  assert.ok(s.receive(msg(5, "m5")));
  assert.equal(s.receive(msg(5, "m5")), null, "same mid");
  assert.equal(s.receive({ ...msg(9, "m5") }), null, "same mid at another offset");
  assert.ok(s.receive(msg(7, "m7")), "offsets may skip numbers");
  assert.deepEqual(s.positions.get("room:r"), { epoch: "e1", offset: 7 });
});

test("a reconnect resubscribes with the last position, and replayed events are not repeated", () => {
  const s = new Session();
  s.subscribe("room:r", { presence: true });
  s.receive({ t: "sub.ok", id: 1, ch: "room:r", epoch: "e1", offset: 0, recovered: true });
  s.receive(msg(1, "m1"));
  s.receive(msg(2, "m2"));
  const [again] = s.resubscribe();
  assert.deepEqual(again, { t: "sub", id: 2, ch: "room:r", presence: true, epoch: "e1", offset: 2 });
  s.receive({ t: "sub.ok", id: 2, ch: "room:r", epoch: "e1", offset: 3, recovered: true });
  assert.equal(s.receive(msg(2, "m2")), null);
  assert.ok(s.receive(msg(3, "m3")));
  assert.equal(s.stale.size, 0);
});

test("a gap the server cannot replay, or a new epoch, marks the channel stale", () => {
  const s = new Session();
  s.subscribe("room:r");
  s.receive({ t: "sub.ok", id: 1, ch: "room:r", epoch: "e1", offset: 5, recovered: true });
  s.resubscribe();
  s.receive({ t: "sub.ok", id: 2, ch: "room:r", epoch: "e2", offset: 1, recovered: false });
  assert.ok(s.stale.has("room:r"));
  assert.deepEqual(s.positions.get("room:r"), { epoch: "e2", offset: 1 });
  s.stale.clear();
  assert.ok(s.receive(msg(1, "x1", "e3")), "an event of another epoch is new");
  assert.ok(s.stale.has("room:r"));
});

test("a sub refused for good is not asked again; the server ending a subscription forgets it", () => {
  const s = new Session();
  s.subscribe("room:a");
  s.subscribe("room:b");
  s.receive({ t: "error", code: 300, message: "no", id: 1, ch: "" });
  s.receive({ t: "sub.ok", id: 2, ch: "room:b", epoch: "e", offset: 0, recovered: true });
  s.receive({ t: "unsub.ok", id: 0, ch: "room:b" });
  assert.deepEqual(s.resubscribe(), []);
});

test("the set of seen mids is bounded, oldest first out", () => {
  const s = new Session({ dedupeSize: 3 });
  for (const n of [1, 2, 3, 4]) s.receive({ ...msg(n, "m" + n), ch: "room:" + n, room: String(n) });
  assert.deepEqual([...s.seen], ["m2", "m3", "m4"]);
});

test("request ids run 1..2**32-1 and wrap past the top", () => {
  const s = new Session();
  s.lastId = 0xfffffffe;
  assert.equal(s.nextId(), 0xffffffff);
  assert.equal(s.nextId(), 1);
});
