// The client against real hub nodes (started by tests/clients/test_js_client.py, which passes
// their addresses and process ids in AMARO_JS_HUBS). The tests run in order and share state:
// sign-up, chat on the first node, that node frozen then killed, the second drained, an upload.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { Api, Client, upload } from "../../src/index.js";

/** @typedef {{id: string, http: string, ws: string, pid: number}} Hub */
/** @typedef {import("../../src/codec.js").Frame} Frame */

const raw = process.env.AMARO_JS_HUBS;
if (!raw) throw new Error("AMARO_JS_HUBS is not set: run these through tests/clients/test_js_client.py");
/** @type {Hub[]} */
const HUBS = JSON.parse(raw);
const [A, B, C] = HUBS;
const PASSWORD = "a-long-passphrase-1";

/** What localStorage is to a browser tab: survives the Api object, here in memory. */
class MemoryStorage {
  constructor() { /** @type {Map<string, string>} */ this.items = new Map(); }
  /** @param {string} key */
  getItem(key) { return this.items.get(key) ?? null; }
  /** @param {string} key @param {string} value */
  setItem(key, value) { this.items.set(key, String(value)); }
  /** @param {string} key */
  removeItem(key) { this.items.delete(key); }
}

/** tus-js-client's URL storage interface, kept across two upload() calls like localStorage across a reload. */
class MemoryUrlStorage {
  constructor() { /** @type {Map<string, any>} */ this.uploads = new Map(); this.next = 0; }
  async findAllUploads() { return [...this.uploads.values()]; }
  /** @param {string} fingerprint */
  async findUploadsByFingerprint(fingerprint) {
    return [...this.uploads.entries()].filter(([k]) => k.startsWith(fingerprint + "::")).map(([k, v]) => ({ ...v, urlStorageKey: k }));
  }
  /** @param {string} key */
  async removeUpload(key) { this.uploads.delete(key); }
  /** @param {string} fingerprint @param {any} value */
  async addUpload(fingerprint, value) {
    const key = `${fingerprint}::${this.next++}`;
    this.uploads.set(key, value);
    return key;
  }
}

/**
 * @param {() => boolean} ok
 * @param {string} what
 * @param {number} [timeoutMs]
 */
async function waitFor(ok, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One person: their Api, their Client and everything the client reported. */
class Person {
  /** @param {string} name */
  constructor(name) {
    this.name = name;
    this.api = new Api({ baseUrl: C.http, storage: new MemoryStorage() });
    /** @type {string[]} */
    this.states = [];
    /** @type {Frame[]} */
    this.frames = [];
    /** @type {Frame[]} chat.msg and other channel frames, after duplicate suppression */
    this.events = [];
    /** @type {Frame[]} */
    this.feed = [];
    /** @type {Frame[]} */
    this.media = [];
    /** @type {string[]} the node of every welcome */
    this.nodes = [];
    /** @type {Client | null} */
    this.client = null;
  }

  get id() { return /** @type {NonNullable<Api["user"]>} */ (this.api.user).id; }

  connect() {
    const client = new Client({
      endpoints: HUBS.map((h) => h.ws), token: (o) => this.api.accessToken(o), name: `amaro-js-test/${this.name}`,
      WebSocket: /** @type {any} */ (WebSocket), probeIntervalMs: 300, handshakeTimeoutMs: 3000, requestTimeoutMs: 10_000,
    });
    client.on("state", (s) => this.states.push(s));
    client.on("frame", (f) => this.frames.push(f));
    client.on("event", (f) => this.events.push(f));
    client.on("feed", (f) => this.feed.push(f));
    client.on("media", (f) => this.media.push(f));
    client.on("welcome", (w) => this.nodes.push(w.node));
    this.client = client;
    return client.connect();
  }

  get c() { return /** @type {Client} */ (this.client); }

  /** @param {string} room */
  chatBodies(room) {
    return this.events.filter((f) => f.t === "chat.msg" && f.room === room).map((f) => f.body);
  }
}

const ana = new Person("ana");
const luca = new Person("luca");
/** @type {string} */
let room = "";
/** @type {string[]} bodies ana's chat.send got a chat.ack for, in order */
const acked = [];

before(async () => {
  const tag = randomBytes(4).toString("hex");
  await ana.api.signup({ username: `ana_${tag}`, password: PASSWORD, display_name: "Ana" });
  await luca.api.signup({ username: `luca_${tag}`, password: PASSWORD, display_name: "Luca" });
});

after(() => {
  ana.client?.close();
  luca.client?.close();
});

test("accounts over HTTP: profiles, a follow, a direct room, a refreshed (rotated) token", async () => {
  assert.equal((await ana.api.me()).display_name, "Ana");
  assert.equal((await luca.api.userByName(/** @type {any} */ (ana.api.user).username)).id, ana.id);
  assert.deepEqual(await luca.api.follow(ana.id), { state: "following" });
  assert.equal((await luca.api.relationship(ana.id)).following, true);
  const created = await ana.api.directRoom(luca.id);
  room = created.id;
  assert.equal((await ana.api.directRoom(luca.id)).id, room, "the direct room is the same one the second time");
  assert.ok((await luca.api.rooms()).items.some((/** @type {any} */ r) => r.id === room));
  const spent = /** @type {NonNullable<Api["session"]>} */ (ana.api.session).refresh_token;
  await ana.api.accessToken({ refresh: true });
  assert.notEqual(/** @type {NonNullable<Api["session"]>} */ (ana.api.session).refresh_token, spent, "refresh tokens rotate");
  assert.equal((await ana.api.me()).id, ana.id, "the new access token works");
  const reuse = await fetch(`${C.http}/api/v1/auth/refresh`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: spent }) });
  assert.equal(reuse.status, 401, "a spent refresh token is refused");
  await assert.rejects(ana.api.post("00000000-0000-0000-0000-000000000000"), (/** @type {any} */ e) => e.status === 404
    && e.code === "not_found");
});

test("both connect to the first hub, chat, and see acks, typing, presence, reactions, receipts", async () => {
  await Promise.all([ana.connect(), luca.connect()]);
  assert.deepEqual([ana.nodes, luca.nodes], [[A.id], [A.id]]);
  assert.deepEqual(ana.states, ["connecting", "open"]);
  const ch = `room:${room}`;
  const sub = await ana.c.subscribe(ch, { presence: true });
  assert.equal(sub.ch, ch);
  const [once, twice] = await Promise.all([luca.c.subscribe(ch, { presence: true }), luca.c.subscribe(ch, { presence: true })]);
  assert.deepEqual([twice.epoch, twice.offset], [once.epoch, once.offset], "one sub answers both calls");
  assert.equal((await luca.c.subscribe(ch)).epoch, once.epoch, "subscribing again is answered at once");
  await ana.c.subscribe(`user:${ana.id}`);
  await luca.c.subscribe(`user:${luca.id}`);

  const ack = await ana.c.chatSend(room, "Sastipe, Luca!");
  acked.push("Sastipe, Luca!");
  assert.equal(ack.t, "chat.ack");
  await waitFor(() => luca.chatBodies(room).length === 1, "luca to receive the message");
  const msg = /** @type {Frame} */ (luca.events.find((f) => f.t === "chat.msg"));
  assert.deepEqual([msg.mid, msg.offset, msg.sender, msg.cmid], [ack.mid, ack.offset, ana.id, ack.cmid]);
  await waitFor(() => ana.chatBodies(room).length === 1, "ana to receive her own message");

  ana.c.typing(ch, true);
  await waitFor(() => luca.events.some((f) => f.t === "typing.ev" && f.user === ana.id && f.active), "typing.ev");
  await waitFor(() => luca.events.some((f) => f.t === "presence.join" && f.user === ana.id)
    || ana.frames.length > 0, "presence");
  const snap = await luca.c.presence(ch);
  assert.ok(snap.users.includes(ana.id) && snap.users.includes(luca.id), JSON.stringify(snap));
  assert.equal((await luca.c.react("message", ack.mid, "👍")).t, "ack");
  await waitFor(() => ana.events.some((f) => f.t === "react.counts" && f.target_id === ack.mid && f.counts["👍"] === 1), "react.counts");
  luca.c.receipt(room, ack.offset, "read");
  await waitFor(() => ana.events.some((f) => f.t === "chat.receipt.ev" && f.user === luca.id && f.offset === ack.offset), "receipt");
  const page = await luca.c.chatHistory(room, { limit: 10 });
  assert.deepEqual(page.messages.map((/** @type {Frame} */ m) => m.mid), [ack.mid]);
  await assert.rejects(ana.c.chatSend("00000000-0000-0000-0000-000000000000", "nobody there"),
    (/** @type {any} */ e) => e.name === "ProtocolError" && e.code === 300);

  const post = await ana.api.createPost({ body: "Dance tonight", visibility: "public" });
  await waitFor(() => luca.feed.some((f) => f.kind === "post.created" && f.data.post.id === post.id), "luca's feed frame");
  await ana.c.subscribe(`post:${post.id}`);
  await luca.c.subscribe(`post:${post.id}`);
  const published = await ana.c.publish(`post:${post.id}`, { kind: "poll.vote", choice: 2, weight: 0.5 });
  assert.equal(published.t, "ack");
  await waitFor(() => luca.events.some((f) => f.t === "event" && f.mid === published.mid && f.data.weight === 0.5), "the app event");

  assert.ok((await ana.c.ping()) >= 0, "a client ping is answered by a pong with its id");
  // Pings every second: a client that did not answer them would be closed after two intervals.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  assert.equal(ana.c.state, "open");
  assert.equal(ana.c.reconnects, 0);
  assert.ok(ana.frames.filter((f) => f.t === "ping").length === 0, "server pings are answered, not passed on");
});

/** Ana keeps talking while the nodes go away; every message is retried with its cmid until acked. */
class Talker {
  constructor() { this.running = true; this.sent = 0; /** @type {Promise<void>} */ this.done = this.run(); }
  async run() {
    while (this.running) {
      const body = `message ${this.sent}`;
      const cmid = `talk-${this.sent}-${randomBytes(4).toString("hex")}`;
      for (;;) {
        try {
          await ana.c.chatSend(room, body, { cmid });
          break;
        } catch (exc) {
          if (!(exc instanceof Error) || !/no answer|connection lost|not connected/.test(exc.message)) throw exc;
        }
      }
      acked.push(body);
      this.sent += 1;
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
  }
  async stop() { this.running = false; await this.done; }
}

/** @type {Talker} */
let talker;

test("a frozen hub goes silent: both clients give it up and resume on the next one", async () => {
  talker = new Talker();
  await waitFor(() => talker.sent >= 5, "a few messages before the freeze");
  process.kill(A.pid, "SIGSTOP");
  await waitFor(() => ana.nodes.at(-1) === B.id && luca.nodes.at(-1) === B.id, "both to move to the second hub");
  assert.ok(ana.c.endpoints.isDown(0), "the silent endpoint is marked down");
  assert.ok(ana.states.includes("reconnecting"));
  const sentAfterMove = talker.sent;
  await waitFor(() => talker.sent >= sentAfterMove + 5, "messages on the second hub");
  process.kill(A.pid, "SIGCONT");
  await waitFor(() => !ana.c.endpoints.isDown(0), "a health probe to find the first hub answering again");
  assert.equal(ana.nodes.at(-1), B.id, "a healthy session is not moved back");
  process.kill(A.pid, "SIGKILL");
});

test("a draining hub: the clients move to the third one, nothing lost or doubled", async (t) => {
  const sentBefore = talker.sent;
  process.kill(B.pid, "SIGTERM");
  await waitFor(() => ana.nodes.at(-1) === C.id && luca.nodes.at(-1) === C.id, "both to move to the third hub");
  assert.ok(ana.frames.some((f) => f.t === "drain"), "the hub said it drains");
  await waitFor(() => talker.sent >= sentBefore + 5, "messages on the third hub");
  await talker.stop();

  await waitFor(() => luca.chatBodies(room).length >= acked.length, `luca to have all ${acked.length} messages`);
  assert.deepEqual(luca.chatBodies(room), acked, "luca got every acked message once, in order");
  await waitFor(() => ana.chatBodies(room).length >= acked.length, "ana to have her own messages");
  assert.deepEqual(ana.chatBodies(room), acked, "ana's own copy too");
  const mids = luca.events.filter((f) => f.t === "chat.msg").map((f) => f.mid);
  assert.equal(new Set(mids).size, mids.length);
  const stored = await luca.c.chatHistory(room, { limit: 100 });
  assert.deepEqual(stored.messages.map((/** @type {Frame} */ m) => m.body).reverse(), acked, "stored once each (cmid)");
  assert.ok(ana.c.reconnects >= 2 && ana.c.state === "open");
  t.diagnostic(`${acked.length} messages; ana's states ${ana.states.join(" ")}; nodes ${ana.nodes.join(" ")}`);
});

test("an upload over tus: interrupted, resumed from the server's offset, progress to 100%", async () => {
  const png = Buffer.concat([Buffer.from("89504e470d0a1a0a0000000d49484452", "hex"), randomBytes(300 * 1024)]);
  const urlStorage = new MemoryUrlStorage();
  const endpoint = `${C.http}/uploads/`;
  const token = () => ana.api.accessToken();
  const chunk = 64 * 1024;

  /** @type {number[]} */
  const firstProgress = [];
  const first = upload(png, { endpoint, token, chunkSize: chunk, urlStorage, metadata: { filename: "a.png", filetype: "image/png" },
    onProgress: (sent) => firstProgress.push(sent) });
  first.start();
  await waitFor(() => firstProgress.some((s) => s >= chunk), "the first chunk");
  await first.abort();
  const remembered = await urlStorage.findAllUploads();
  assert.equal(remembered.length, 1, "the unfinished upload is remembered");

  /** @type {[number, number][]} */
  const progress = [];
  const second = upload(png, { endpoint, token, chunkSize: chunk, urlStorage, metadata: { filename: "a.png", filetype: "image/png" },
    onProgress: (sent, total) => progress.push([sent, total]) });
  second.start();
  const { uploadId, postId } = await second.promise;
  assert.ok(progress.length > 0);
  assert.ok(progress[0][0] >= chunk, `resumed after the first chunk, not from 0: ${progress[0][0]}`);
  assert.equal(uploadId, remembered[0].uploadUrl.split("/").pop(), "the same upload, resumed");
  assert.deepEqual(progress.at(-1), [png.length, png.length], "progress reaches 100%");
  assert.match(uploadId, /^[A-Za-z0-9_-]+$/);
  assert.match(postId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal((await urlStorage.findAllUploads()).length, 0, "a finished upload is forgotten");
  await waitFor(() => ana.media.some((f) => f.upload === uploadId && f.phase === "received"), "the media received event");
  const post = await ana.api.createPost({ post_id: postId, body: "my picture" });
  assert.equal(post.id, postId);
  assert.ok((await ana.api.media(uploadId)) !== null);
});

/** Every operation of the node's OpenAPI document, and the Api method that calls it. */
const OPERATIONS = {
  "POST /auth/signup": "signup", "POST /auth/login": "login", "POST /auth/refresh": "accessToken",
  "POST /auth/logout": "logout",
  "GET /me": "me", "PATCH /me": "updateMe", "GET /users/by-name/{}": "userByName", "GET /users/{}": "profile",
  "GET /users/{}/relationship": "relationship", "POST /users/{}/follow": "follow", "DELETE /users/{}/follow": "unfollow",
  "GET /users/{}/followers": "followers", "GET /users/{}/following": "following", "GET /me/follow-requests": "followRequests",
  "POST /me/follow-requests/{}/accept": "acceptRequest", "POST /me/follow-requests/{}/decline": "declineRequest",
  "POST /users/{}/block": "block", "DELETE /users/{}/block": "unblock", "GET /me/blocks": "blocks",
  "POST /rooms": "createRoom", "GET /rooms": "rooms", "GET /rooms/{}": "room", "PATCH /rooms/{}": "renameRoom",
  "POST /rooms/{}/members": "addMembers", "PATCH /rooms/{}/members/{}": "setRole", "DELETE /rooms/{}/members/{}": "removeMember",
  "PUT /rooms/{}/mute": "mute", "DELETE /rooms/{}/mute": "mute",
  "POST /posts": "createPost", "GET /posts/{}": "post", "PATCH /posts/{}": "editPost", "DELETE /posts/{}": "deletePost",
  "GET /posts/{}/comments": "comments", "POST /posts/{}/comments": "comment", "DELETE /comments/{}": "deleteComment",
  "GET /timelines/home": "home", "GET /users/{}/posts": "userPosts", "GET /media/{}": "media",
};

test("every operation of /api/v1/openapi.json has its Api method", async () => {
  const doc = await (await fetch(`${C.http}/api/v1/openapi.json`)).json();
  const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(/** @type {object} */ (ops))
    .filter((verb) => ["get", "post", "put", "patch", "delete"].includes(verb))
    .map((verb) => `${verb.toUpperCase()} ${path.replace(/^\/api\/v1/, "").replace(/\{[^}]+\}/g, "{}")}`));
  assert.ok(listed.length >= 38, `only ${listed.length} operations listed`);
  const missing = listed.filter((op) => !(op in OPERATIONS));
  assert.deepEqual(missing, [], "operations without an Api method");
  for (const method of Object.values(OPERATIONS)) {
    assert.equal(typeof (/** @type {any} */ (ana.api))[method], "function", method);
  }
});

test("the rest of the social API: profiles, private follows, posts and comments, group rooms, blocks", async () => {
  // me and follows (a private account asks first)
  assert.equal((await ana.api.updateMe({ bio: "Dancer" })).bio, "Dancer");
  assert.equal((await luca.api.updateMe({ private: true })).private, true);
  assert.deepEqual(await ana.api.follow(luca.id), { state: "requested" });
  assert.deepEqual((await luca.api.followRequests()).items.map((/** @type {any} */ i) => i.user.id), [ana.id]);
  await luca.api.declineRequest(ana.id);
  assert.equal((await ana.api.relationship(luca.id)).requested, false);
  await ana.api.follow(luca.id);
  await luca.api.acceptRequest(ana.id);
  assert.equal((await ana.api.relationship(luca.id)).following, true);
  assert.ok((await ana.api.followers(luca.id)).items.some((/** @type {any} */ i) => i.user.id === ana.id));
  assert.ok((await luca.api.following(luca.id)).items.some((/** @type {any} */ i) => i.user.id === ana.id));
  assert.equal((await ana.api.profile(luca.id)).id, luca.id, "profile(id) fetches a profile");
  await ana.api.unfollow(luca.id);
  assert.equal((await ana.api.relationship(luca.id)).following, false);
  await luca.api.updateMe({ private: false });

  // posts and comments
  const post = await ana.api.createPost({ body: "First draft", visibility: "followers" });
  assert.equal((await ana.api.editPost(post.id, { body: "Final words" })).body, "Final words");
  const comment = await luca.api.comment(post.id, { body: "Nice!" });
  const reply = await ana.api.comment(post.id, { body: "Thanks", parent_id: comment.id });
  assert.deepEqual((await ana.api.comments(post.id)).items.map((/** @type {any} */ c) => c.id), [comment.id, reply.id]);
  await ana.api.deleteComment(reply.id);
  assert.ok((await luca.api.home({ limit: 5 })).items.some((/** @type {any} */ p) => p.id === post.id));
  assert.ok((await luca.api.userPosts(ana.id, { limit: 5 })).items.some((/** @type {any} */ p) => p.id === post.id));
  await ana.api.deletePost(post.id);
  await assert.rejects(luca.api.post(post.id), (/** @type {any} */ e) => e.status === 404);

  // a group room
  const group = await ana.api.createRoom({ kind: "group", members: [luca.id], title: "Dancers" });
  assert.equal((await ana.api.renameRoom(group.id, "Night dancers")).title, "Night dancers");
  await ana.api.setRole(group.id, luca.id, "admin");
  assert.ok((await ana.api.room(group.id)).members.some((/** @type {any} */ m) => m.id === luca.id && m.role === "admin"));
  await ana.api.mute(group.id, true);
  assert.equal((await ana.api.rooms()).items.find((/** @type {any} */ r) => r.id === group.id).muted, true);
  await ana.api.mute(group.id, false);
  await ana.api.removeMember(group.id, luca.id);
  await ana.api.addMembers(group.id, [luca.id]);
  await luca.api.leaveRoom(group.id);
  await assert.rejects(luca.api.room(group.id), (/** @type {any} */ e) => e.status === 404);

  // blocks
  await luca.api.block(ana.id);
  assert.deepEqual((await luca.api.blocks()).items.map((/** @type {any} */ i) => i.user.id), [ana.id]);
  await assert.rejects(ana.api.profile(luca.id), (/** @type {any} */ e) => e.status === 404);
  await luca.api.unblock(ana.id);
  assert.equal((await ana.api.profile(luca.id)).id, luca.id);

  // log out and back in
  const username = /** @type {any} */ (luca.api.user).username;
  /** @type {(string | null)[]} */
  const seen = [];
  const off = luca.api.onSession((u) => seen.push(u?.id ?? null));
  await luca.api.logout();
  assert.equal(luca.api.user, null);
  await assert.rejects(luca.api.login({ username, password: "wrong-passphrase-9" }),
    (/** @type {any} */ e) => e.status === 401 && e.code === "invalid_credentials");
  await luca.api.login({ username, password: PASSWORD });
  off();
  assert.deepEqual(seen, [null, luca.id]);
});

test("a refused token: asked again once with refresh, then the client stops and connect() rejects", async () => {
  /** @type {(boolean | undefined)[]} */
  const asked = [];
  const client = new Client({ endpoints: [C.ws], WebSocket: /** @type {any} */ (WebSocket), backoffBaseMs: 10,
    token: async (o) => { asked.push(o?.refresh); return "at1.forged.token"; } });
  /** @type {string[]} */
  const states = [];
  client.on("state", (s) => states.push(s));
  await assert.rejects(client.connect(), (/** @type {any} */ e) => e.name === "ProtocolError" && e.code === 200);
  assert.deepEqual(asked, [false, true]);
  assert.equal(states.at(-1), "closed");
  assert.equal(client.endpoints.isDown(0), false, "a refusal is an answer: the endpoint is up");

  const closing = new Client({ endpoints: [C.ws], WebSocket: /** @type {any} */ (WebSocket), token: () => ana.api.accessToken() });
  const connecting = closing.connect();
  closing.close();
  await connecting; // closing before the socket opened is no failure
  assert.equal(closing.state, "closed");
});
