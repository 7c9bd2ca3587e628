/**
 * The socket client (SPEC §3-§9): one logical session over a succession of sockets. It matches
 * answers to requests, keeps the channels subscribed across reconnects and resumes them from the
 * last position seen (duplicates dropped by `mid`), reconnects with exponential backoff and full
 * jitter, honours `drain` (new socket first, then the old one closed) and `disconnect` hints, fetches
 * a token before every (re)connect, and fails over between several endpoints: one that cannot be
 * reached, refuses the handshake or goes silent is set aside until a probe finds it answering.
 *
 *     const client = new Client({ endpoints: ["wss://example.org/ws"], token: () => api.accessToken() });
 *     client.on("event", (frame) => render(frame));
 *     await client.connect();
 *     await client.subscribe(`room:${roomId}`, { presence: true });
 *     const ack = await client.chatSend(roomId, "Sastipe!");
 */

import { Endpoints, backoffDelay } from "./backoff.js";
import { Connection, HandshakeError } from "./connection.js";
import { ErrorCode, FrameError, ProtocolError } from "./errors.js";
import { DURABLE_TYPES } from "./frames.js";
import { Session } from "./session.js";

/** @typedef {import("./codec.js").Frame} Frame */
/** @typedef {import("./connection.js").WebSocketClass} WebSocketClass */
/** @typedef {"idle" | "connecting" | "open" | "reconnecting" | "closed"} State */
/**
 * A token source: called before every (re)connect; `refresh` is true after the server refused
 * the last token (fetch a new one rather than a cached one).
 * @typedef {(options?: {refresh?: boolean}) => Promise<string>} TokenSource
 */
/**
 * @typedef {{frame: Frame, resolve: (frame: Frame) => void, reject: (error: Error) => void,
 *            conn: Connection | null, timer: ReturnType<typeof setTimeout>}} Pending
 * @typedef {{ch: string, epoch: string, offset: number, recovered: boolean, unsubscribe: () => Promise<void>}} Subscription
 */

/** Requests sent again on the next socket when theirs was lost unanswered: they are idempotent
 * (`chat.send` by `cmid`, `pub` by `key`, `react` by nature) or only read (SPEC §8). */
const RESENDABLE = new Set(["chat.send", "pub", "react", "chat.history", "presence.get"]);
/** Close codes after which reconnecting cannot help (SPEC §13). */
const FATAL_CLOSE = new Set([1002, 1008, 1009, 4000, 4003]);
/** Frames of a channel that go to "event" listeners (feed and media frames have their own). */
const CHANNEL_FRAMES = new Set(["event", "chat.msg", "chat.receipt.ev", "presence.join", "presence.leave", "presence.snap",
  "typing.ev", "react.counts", "unsub.ok"]);

export class Client {
  /**
   * @param {{endpoints: string[], token: TokenSource, name?: string, WebSocket?: WebSocketClass,
   *          requestTimeoutMs?: number, handshakeTimeoutMs?: number, probeIntervalMs?: number,
   *          healthyAfterMs?: number, backoffBaseMs?: number, backoffCapMs?: number, random?: () => number}} options
   *   `endpoints`: socket URLs in order of preference; `probeIntervalMs`: how often an endpoint
   *   that is down is probed; `healthyAfterMs`: a session open that long resets the backoff.
   */
  constructor({ endpoints, token, name = "amaro-web/0.1", WebSocket = globalThis.WebSocket, requestTimeoutMs = 10_000,
    handshakeTimeoutMs = 10_000, probeIntervalMs = 15_000, healthyAfterMs = 60_000, backoffBaseMs = 500,
    backoffCapMs = 30_000, random = Math.random }) {
    if (typeof WebSocket !== "function") throw new TypeError("no WebSocket implementation: pass one as `WebSocket`");
    this.endpoints = new Endpoints(endpoints);
    this.tokenSource = token;
    this.name = name;
    this.WebSocket = WebSocket;
    this.requestTimeoutMs = requestTimeoutMs;
    this.handshakeTimeoutMs = handshakeTimeoutMs;
    this.probeIntervalMs = probeIntervalMs;
    this.healthyAfterMs = healthyAfterMs;
    this.backoff = { baseMs: backoffBaseMs, capMs: backoffCapMs, random };
    this.random = random;
    this.session = new Session();
    /** @type {State} */
    this.state = "idle";
    /** @type {Frame | null} the last `welcome` */
    this.welcome = null;
    /** How many times a new socket replaced a lost or drained one. */
    this.reconnects = 0;
    /** @type {Connection | null} */
    this.conn = null;
    this.connIndex = 0;
    /** @type {Map<number, Pending>} */
    this.pending = new Map();
    /** @type {Map<string, {resolve: (s: Subscription) => void, reject: (e: Error) => void}[]>} */
    this.subWaiters = new Map();
    /** @type {Map<string, Subscription>} channels the current socket is subscribed to */
    this.subscribed = new Map();
    /** @type {Map<string, Function[]>} */
    this.listeners = new Map();
    /** @type {Map<number, ReturnType<typeof setTimeout>>} */
    this.probes = new Map();
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.reconnectTimer = null;
    this.attempt = 0;
    /** @type {number | null} the server's reconnect hint, ms */
    this.hintMs = null;
    this.openedAt = 0;
    this.stopped = false;
    /** @type {Error | null} why the client stopped by itself */
    this.stopReason = null;
    this.refusedToken = false;
    this.draining = false;
    /** @type {"online" | "away"} */
    this.status = "online";
  }

  /**
   * Listen to "state" (the new state), "frame" (every server frame), "event" (channel frames after
   * duplicate suppression: chat.msg, event, typing.ev, presence.*, react.counts, chat.receipt.ev,
   * and unsub.ok with id 0 when the server ended a subscription), "feed", "media", "welcome",
   * "stale" (a channel whose history may have a hole: refetch it) and "error" (an `error` frame
   * answering no request, or why the client stopped).
   * @param {string} event
   * @param {(value: any) => void} cb
   * @returns {() => void} unsubscribe
   */
  on(event, cb) {
    const list = this.listeners.get(event) ?? [];
    list.push(cb);
    this.listeners.set(event, list);
    return () => {
      const current = this.listeners.get(event) ?? [];
      this.listeners.set(event, current.filter((x) => x !== cb));
    };
  }

  /**
   * @param {string} event
   * @param {unknown} value
   */
  emit(event, value) {
    for (const cb of this.listeners.get(event) ?? []) {
      try {
        cb(value);
      } catch (exc) {
        setTimeout(() => { throw exc; }); // a listener's bug must not break the client
      }
    }
  }

  /** @param {State} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  /**
   * Connect (and keep connected until `close`).
   * @returns {Promise<void>} settled once a session is open, or when `close` is called first;
   *   rejected when the client stops by itself first (a refusal retrying cannot change)
   */
  connect() {
    if (this.state === "open") return Promise.resolve();
    const opened = new Promise((resolve, reject) => {
      const off = this.on("state", (/** @type {State} */ state) => {
        if (state === "open") { off(); resolve(undefined); }
        if (state === "closed") {
          off();
          if (this.stopReason === null) resolve(undefined); // the application closed it: nothing failed
          else reject(this.stopReason);
        }
      });
    });
    if (this.state === "idle" || this.state === "closed") {
      this.stopped = false;
      this.stopReason = null;
      this.attempt = 0;
      this.setState("connecting");
      void this.attemptOpen(this.connIndex);
    }
    return /** @type {Promise<void>} */ (opened);
  }

  /** Close the socket and stop reconnecting; pending requests are rejected. */
  close() {
    this.stop(null);
  }

  /** @param {Error | null} reason why the client stops by itself (null: the application asked) */
  stop(reason) {
    this.stopped = true;
    this.stopReason = reason;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    for (const timer of this.probes.values()) clearTimeout(timer);
    this.probes.clear();
    const conn = this.conn;
    this.conn = null;
    conn?.close(1000, "client closed");
    this.subscribed.clear();
    this.failAll(reason ?? new ProtocolError("client closed", 0));
    if (reason !== null) this.emit("error", reason);
    this.setState("closed");
  }

  /** @param {Error} error */
  failAll(error) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(error);
    }
    for (const waiters of this.subWaiters.values()) waiters.forEach((w) => w.reject(error));
    this.subWaiters.clear();
  }

  // -- opening sockets ----------------------------------------------------------------------

  /**
   * Open a socket to the first endpoint up from `from` and make it the session's.
   * @param {number} from
   */
  async attemptOpen(from) {
    this.reconnectTimer = null;
    if (this.stopped) return;
    const index = this.endpoints.pick(from);
    const conn = await this.openSocket(index);
    if (this.stopped || (conn !== null && this.conn !== null)) {
      conn?.close(1000, "not needed"); // closed, or a drain's new socket got there first
      return;
    }
    if (conn === null) {
      if (!this.stopped) this.scheduleReconnect(index);
      return;
    }
    this.adopt(conn, index);
  }

  /**
   * Fetch a token, open a socket to endpoint `index` and authenticate. Null when it failed (the
   * endpoint is then marked down, or the client stopped for good).
   * @param {number} index
   * @returns {Promise<Connection | null>}
   */
  async openSocket(index) {
    /** @type {string} */
    let token;
    try {
      token = await this.tokenSource({ refresh: this.refusedToken });
    } catch (exc) {
      this.emit("error", exc);
      return null; // no token now (offline, logged out): try again later
    }
    try {
      const conn = await Connection.open({ url: this.endpoints.urls[index], token, name: this.name, WebSocket: this.WebSocket,
        timeoutMs: this.handshakeTimeoutMs });
      this.refusedToken = false;
      return conn;
    } catch (exc) {
      if (!(exc instanceof HandshakeError)) throw exc;
      if (!exc.refused) {
        this.markDown(index);
      } else if (Math.floor(exc.code / 100) === 2 && !this.refusedToken) {
        this.refusedToken = true; // refresh the token once and try again
      } else {
        this.stop(new ProtocolError(exc.message, exc.code)); // a refusal retrying cannot change
      }
      return null;
    }
  }

  /** @param {number} index */
  scheduleReconnect(index) {
    if (this.stopped || this.reconnectTimer !== null) return;
    const delay = backoffDelay(this.attempt, { ...this.backoff, hintMs: this.hintMs });
    this.attempt += 1;
    this.hintMs = null;
    this.setState(this.state === "connecting" ? "connecting" : "reconnecting");
    this.reconnectTimer = setTimeout(() => void this.attemptOpen(index), delay);
  }

  /**
   * Make `conn` the session's socket: resubscribe from the positions, resend what was lost.
   * @param {Connection} conn
   * @param {number} index
   */
  adopt(conn, index) {
    if (this.welcome !== null) this.reconnects += 1;
    this.conn = conn;
    this.connIndex = index;
    this.openedAt = Date.now();
    this.welcome = conn.welcome;
    conn.onFrame = (frame) => this.dispatch(frame);
    conn.onClose = (code, reason, silent) => this.lost(conn, index, code, reason, silent);
    this.emit("welcome", conn.welcome);
    this.subscribed.clear();
    for (const sub of this.session.resubscribe()) this.sendSub(sub, conn);
    if (this.status !== "online") conn.send({ t: "presence.hb", status: this.status });
    for (const p of this.pending.values()) {
      if (p.conn === null) this.transmit(p, conn);
    }
    this.setState("open");
  }

  /**
   * @param {Connection} conn
   * @param {number} index
   * @param {number} code
   * @param {string} reason
   * @param {boolean} silent
   */
  lost(conn, index, code, reason, silent) {
    for (const [id, p] of this.pending) {
      if (p.conn !== conn) continue;
      if (RESENDABLE.has(p.frame.t)) {
        p.conn = null; // sent again with the same idempotency key on the next socket
        if (this.conn !== null && this.conn !== conn) this.transmit(p, this.conn);
      } else if (p.frame.t !== "sub") {
        clearTimeout(p.timer);
        this.pending.delete(id);
        p.reject(new ProtocolError(`connection lost (${code})`, 0));
      } else {
        clearTimeout(p.timer);
        this.pending.delete(id); // the next socket subscribes again
      }
    }
    if (conn !== this.conn) return; // a drained socket closing after its successor took over
    this.conn = null;
    this.subscribed.clear();
    if (this.stopped) return;
    if (silent) this.markDown(index);
    if (FATAL_CLOSE.has(code)) {
      this.stop(new ProtocolError(`closed by the server: ${code} ${reason}`, 0));
      return;
    }
    if (Date.now() - this.openedAt >= this.healthyAfterMs) this.attempt = 0;
    this.setState("reconnecting");
    this.scheduleReconnect(index);
  }

  /** @param {number} index */
  markDown(index) {
    this.endpoints.markDown(index);
    this.startProbe(index);
  }

  /**
   * Probe a down endpoint every `probeIntervalMs` until a socket to it opens.
   * @param {number} index
   */
  startProbe(index) {
    if (this.probes.has(index) || this.stopped) return;
    this.probes.set(index, setTimeout(async () => {
      const alive = await probe(this.WebSocket, this.endpoints.urls[index], this.handshakeTimeoutMs);
      this.probes.delete(index);
      if (alive) this.endpoints.markUp(index);
      else this.startProbe(index);
    }, this.probeIntervalMs));
  }

  // -- receiving ----------------------------------------------------------------------------

  /** @param {Frame} received */
  dispatch(received) {
    this.emit("frame", received);
    const frame = this.session.receive(received);
    if (frame === null) return; // a durable event already seen
    if (frame.t === "unsub.ok") this.subscribed.delete(frame.ch);
    const p = frame.id ? this.pending.get(frame.id) : undefined;
    if (p !== undefined && frame.t !== "ping") { // a server ping's id is the server's own
      this.settle(frame.id, p, frame);
      return;
    }
    if (frame.t === "drain") {
      this.drain(frame);
    } else if (frame.t === "disconnect") {
      this.hintMs = frame.reconnect_after_ms;
      if (!frame.reconnect) this.stop(new ProtocolError(`disconnected for good: ${frame.code} ${frame.reason}`, 0));
    } else if (frame.t === "feed" || frame.t === "media") {
      this.emit(frame.t, frame);
    } else if (CHANNEL_FRAMES.has(frame.t)) {
      this.emit("event", frame);
    } else if (frame.t === "error") {
      this.emit("error", new ProtocolError(`${frame.code} ${frame.message}`, frame.code, frame));
    }
    if (DURABLE_TYPES.has(frame.t)) this.reportStale(frame.ch);
  }

  /** @param {string} ch */
  reportStale(ch) {
    if (!this.session.stale.has(ch)) return;
    this.session.stale.delete(ch);
    this.emit("stale", ch);
  }

  /**
   * @param {number} id
   * @param {Pending} p
   * @param {Frame} frame its answer
   */
  settle(id, p, frame) {
    clearTimeout(p.timer);
    this.pending.delete(id);
    if (frame.t === "error") p.reject(new ProtocolError(`${frame.code} ${frame.message}`, frame.code, frame));
    else p.resolve(frame);
  }

  // -- drain (SPEC §5.8) ----------------------------------------------------------------------

  /** @param {Frame} frame */
  drain(frame) {
    const old = this.conn;
    if (this.draining || old === null) return;
    this.draining = true;
    const oldIndex = this.connIndex;
    this.markDown(oldIndex); // it is going away: the probe tells when it answers again
    const wait = frame.reconnect_after_ms + this.random() * Math.min(1000, this.backoff.baseMs * 2);
    setTimeout(async () => {
      try {
        // Another endpoint first; the same one last (behind a balancer it reaches another node).
        for (let i = 1; i <= this.endpoints.urls.length && !this.stopped && (this.conn === old || this.conn === null); i++) {
          const index = this.endpoints.pick(oldIndex + i);
          const conn = await this.openSocket(index);
          if (conn === null) continue;
          if (this.stopped || (this.conn !== old && this.conn !== null)) {
            conn.close(1000, "not needed"); // closed, or a reconnect got there first
            return;
          }
          if (this.reconnectTimer !== null) {
            // The old socket closed meanwhile: this one replaces the scheduled reconnect.
            clearTimeout(this.reconnectTimer);
            this.reconnectTimer = null;
          }
          this.adopt(conn, index);
          if (!old.closed) {
            await this.subscriptionsSettled(5000);
            old.close(1000, "drained");
          }
          return;
        }
      } finally {
        this.draining = false;
      }
    }, wait);
  }

  /**
   * Until no `sub` is waiting for its answer, or `timeoutMs` passed.
   * @param {number} timeoutMs
   */
  async subscriptionsSettled(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && [...this.pending.values()].some((p) => p.frame.t === "sub")) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  // -- requests -----------------------------------------------------------------------------

  /**
   * @param {Pending} p
   * @param {Connection} conn
   */
  transmit(p, conn) {
    p.conn = conn;
    try {
      conn.send(p.frame);
    } catch (exc) {
      clearTimeout(p.timer);
      this.pending.delete(p.frame.id);
      p.reject(exc instanceof Error ? exc : new Error(String(exc)));
    }
  }

  /**
   * Send a request (an `id` is assigned unless given) and wait for its answer. While the client
   * is reconnecting the request waits for the next socket.
   * @param {Frame} frame
   * @returns {Promise<Frame>} the answer; rejected with ProtocolError on an `error` answer,
   *   a timeout (code 0) or a lost socket (code 0, for requests that are not idempotent)
   */
  request(frame) {
    if (this.state === "idle" || this.state === "closed") {
      return Promise.reject(new ProtocolError(`not connected (${this.state})`, 0));
    }
    const withId = frame.id ? frame : { ...frame, id: this.session.nextId() };
    return new Promise((resolve, reject) => {
      /** @type {Pending} */
      const p = {
        frame: withId, resolve, reject, conn: null,
        timer: setTimeout(() => {
          this.pending.delete(withId.id);
          reject(new ProtocolError(`no answer to ${withId.t} within ${this.requestTimeoutMs} ms`, 0));
        }, this.requestTimeoutMs),
      };
      this.pending.set(withId.id, p);
      if (this.conn !== null) this.transmit(p, this.conn);
    });
  }

  /**
   * @param {Frame} sub a `sub` frame from the session
   * @param {Connection} conn
   */
  sendSub(sub, conn) {
    const ch = sub.ch;
    /** @type {Pending} */
    const p = {
      frame: sub, conn,
      resolve: (answer) => {
        const handle = { ch, epoch: answer.epoch, offset: answer.offset, recovered: answer.recovered,
          unsubscribe: () => this.unsubscribe(ch) };
        if (conn === this.conn) this.subscribed.set(ch, handle);
        if (!answer.recovered) this.reportStale(ch);
        this.settleWaiters(ch, handle);
      },
      reject: (error) => {
        // A draining node refuses new subscriptions (502): the next socket subscribes again.
        if (error instanceof ProtocolError && error.code === ErrorCode.DRAINING) return;
        for (const w of this.subWaiters.get(ch) ?? []) w.reject(error);
        this.subWaiters.delete(ch);
      },
      timer: setTimeout(() => this.pending.delete(sub.id), this.requestTimeoutMs),
    };
    this.pending.set(sub.id, p);
    this.transmit(p, conn);
  }

  /**
   * @param {string} ch
   * @param {Subscription} handle
   */
  settleWaiters(ch, handle) {
    for (const w of this.subWaiters.get(ch) ?? []) w.resolve(handle);
    this.subWaiters.delete(ch);
  }

  /**
   * Subscribe to a channel, kept across reconnects and resumed from the last position seen.
   * @param {string} ch e.g. `room:<id>`, `user:<me>`
   * @param {{presence?: boolean}} [options] also join the channel's presence
   * @returns {Promise<Subscription>}
   */
  subscribe(ch, { presence = false } = {}) {
    if (this.state === "idle" || this.state === "closed") {
      return Promise.reject(new ProtocolError(`not connected (${this.state})`, 0));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ProtocolError(`no answer to sub ${ch} within ${this.requestTimeoutMs} ms`, 0)),
        this.requestTimeoutMs);
      const waiters = this.subWaiters.get(ch) ?? [];
      waiters.push({
        resolve: (s) => { clearTimeout(timer); resolve(s); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.subWaiters.set(ch, waiters);
      const current = this.subscribed.get(ch);
      if (current !== undefined) {
        this.settleWaiters(ch, current); // already subscribed on this socket
      } else if (!this.session.wanted.has(ch)) {
        const sub = this.session.subscribe(ch, { presence });
        if (this.conn !== null) this.sendSub(sub, this.conn); // else the next socket subscribes
      } // else a sub is on its way: its answer settles this waiter too
    });
  }

  /**
   * Stop receiving a channel (and stop resuming it).
   * @param {string} ch
   * @returns {Promise<void>}
   */
  async unsubscribe(ch) {
    const frame = this.session.unsubscribe(ch);
    this.subscribed.delete(ch);
    if (this.conn === null) return;
    try {
      await this.request(frame);
    } catch (exc) {
      if (!(exc instanceof ProtocolError && exc.code === ErrorCode.NOT_SUBSCRIBED)) throw exc;
    }
  }

  /**
   * Send a frame that has no answer; false when no socket is open (it is dropped: typing,
   * receipts and presence are worth nothing late).
   * @param {Frame} frame
   */
  sendNow(frame) {
    return this.conn !== null && this.conn.send(frame);
  }

  /**
   * Send a chat message; a socket lost before the answer resends it with the same `cmid`, so it
   * is stored once.
   * @param {string} room the room id
   * @param {string} body
   * @param {{replyTo?: string, cmid?: string}} [options]
   * @returns {Promise<Frame>} the `chat.ack` ({mid, offset, ts, cmid})
   */
  chatSend(room, body, { replyTo = "", cmid = newId() } = {}) {
    return this.request({ t: "chat.send", room, cmid, body, reply_to: replyTo });
  }

  /**
   * A page of a room's messages, newest first, with offsets below `before` (-1: the newest).
   * @param {string} room
   * @param {{before?: number, limit?: number}} [options]
   * @returns {Promise<Frame>} the `chat.page` ({messages, more})
   */
  chatHistory(room, { before = -1, limit = 50 } = {}) {
    return this.request({ t: "chat.history", room, before, limit });
  }

  /**
   * Mark a room's messages up to `offset` delivered or read.
   * @param {string} room
   * @param {number} offset
   * @param {"delivered" | "read"} [kind]
   */
  receipt(room, offset, kind = "read") {
    return this.sendNow({ t: "chat.receipt", room, offset, kind });
  }

  /**
   * Typing indicator on a subscribed channel (send `true` every ~3 s while typing, `false` at the end).
   * @param {string} ch
   * @param {boolean} [active]
   */
  typing(ch, active = true) {
    return this.sendNow({ t: "typing", ch, active });
  }

  /**
   * Set or clear one reaction on a post or a chat message (`targetId`: its `mid`).
   * @param {"post" | "message"} targetKind
   * @param {string} targetId
   * @param {string} emoji
   * @param {boolean} [on]
   * @returns {Promise<Frame>} the `ack`
   */
  react(targetKind, targetId, emoji, on = true) {
    return this.request({ t: "react", target_kind: targetKind, target_id: targetId, emoji, on });
  }

  /**
   * Who is present on a subscribed channel.
   * @param {string} ch
   * @returns {Promise<Frame>} the `presence.snap` ({users, count, truncated})
   */
  presence(ch) {
    return this.request({ t: "presence.get", ch });
  }

  /**
   * Tell the server this user is online or away (kept across reconnects).
   * @param {"online" | "away"} status
   */
  setStatus(status) {
    this.status = status;
    return this.sendNow({ t: "presence.hb", status });
  }

  /**
   * Round trip of a protocol ping.
   * @returns {Promise<number>} milliseconds
   */
  async ping() {
    const started = Date.now();
    await this.request({ t: "ping" });
    return Date.now() - started;
  }

  /**
   * Publish an application event on a subscribed channel; resent with the same `key` if the
   * socket is lost before the answer.
   * @param {string} ch
   * @param {unknown} data
   * @param {{key?: string}} [options]
   * @returns {Promise<Frame>} the `ack`
   */
  publish(ch, data, { key = newId() } = {}) {
    return this.request({ t: "pub", ch, key, data });
  }
}

/** A fresh idempotency key. */
function newId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID().replaceAll("-", "");
  return Array.from({ length: 16 }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, "0")).join("");
}

/**
 * Whether a socket to `url` opens within `timeoutMs` (closed at once, without `hello`).
 * @param {WebSocketClass} WebSocket
 * @param {string} url
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
function probe(WebSocket, url, timeoutMs) {
  return new Promise((resolve) => {
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      resolve(false);
      return;
    }
    const timer = setTimeout(() => done(false), timeoutMs);
    /** @param {boolean} alive */
    const done = (alive) => {
      clearTimeout(timer);
      try { ws.close(1000, "probe"); } catch { /* already closed */ }
      resolve(alive);
    };
    ws.addEventListener("open", () => done(true));
    ws.addEventListener("error", () => done(false));
    ws.addEventListener("close", () => done(false));
  });
}

export { FrameError, ProtocolError };
