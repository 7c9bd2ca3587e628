/**
 * One authenticated socket (SPEC §3, §5): open it, send `hello`, wait for `welcome`, then frames
 * both ways, with the protocol's own liveness: the client answers the server's pings, sends a
 * ping when it has heard nothing for one interval, and gives the socket up after two silent
 * intervals. No reconnect here: client.js decides what happens after a close.
 */

import { decode, encode } from "./codec.js";
import { FrameError } from "./errors.js";

/** @typedef {import("./codec.js").Frame} Frame */
/**
 * The constructor of a WHATWG WebSocket (the browser's, or the `ws` package in Node).
 * @typedef {new (url: string) => WebSocket} WebSocketClass
 */

/** Why a socket could not be opened: `code` is the server's error code when it refused `hello`. */
export class HandshakeError extends Error {
  /**
   * @param {string} message
   * @param {{code?: number, closeCode?: number, refused?: boolean}} [details]
   *   `refused`: the server answered (an `error` frame), as opposed to a network failure
   */
  constructor(message, { code = 0, closeCode = 0, refused = false } = {}) {
    super(message);
    this.name = "HandshakeError";
    this.code = code;
    this.closeCode = closeCode;
    this.refused = refused;
  }
}

export class Connection {
  /**
   * @param {WebSocket} ws
   * @param {number} maxFrame
   */
  constructor(ws, maxFrame) {
    this.ws = ws;
    this.maxFrame = maxFrame;
    /** @type {Frame | null} */
    this.welcome = null;
    this.lastHeard = Date.now();
    this.lastPing = 0;
    this.closed = false;
    /** @type {(frame: Frame) => void} */
    this.onFrame = () => {};
    /** @type {(code: number, reason: string, silent: boolean) => void} */
    this.onClose = () => {};
    /** @type {ReturnType<typeof setInterval> | null} */
    this.timer = null;
  }

  /**
   * Connect to `url` and authenticate with `token`.
   * @param {{url: string, token: string, name: string, WebSocket: WebSocketClass, timeoutMs?: number,
   *          maxFrame?: number}} options
   * @returns {Promise<Connection>} once `welcome` arrived
   * @throws {HandshakeError}
   */
  static open({ url, token, name, WebSocket, timeoutMs = 10_000, maxFrame = 64 * 1024 }) {
    return new Promise((resolve, reject) => {
      /** @type {WebSocket} */
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (exc) {
        reject(new HandshakeError(`cannot open ${url}: ${exc instanceof Error ? exc.message : String(exc)}`));
        return;
      }
      ws.binaryType = "arraybuffer";
      const conn = new Connection(ws, maxFrame);
      let settled = false;
      /** @param {HandshakeError | null} error */
      const settle = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (error === null) {
          resolve(conn);
        } else {
          conn.detach();
          try { ws.close(); } catch { /* already closing */ }
          reject(error);
        }
      };
      const deadline = setTimeout(() => settle(new HandshakeError(`no welcome from ${url} within ${timeoutMs} ms`)), timeoutMs);
      /** @type {Frame | null} */
      let refusal = null;
      conn.onFrame = (frame) => {
        if (frame.t === "welcome") {
          conn.welcome = frame;
          conn.maxFrame = frame.max_frame;
          conn.startLiveness(frame.ping_interval_ms);
          settle(null);
        } else if (frame.t === "error") {
          refusal = frame; // the close follows; every error before welcome is fatal (SPEC §5.5)
        }
      };
      conn.onClose = (code, reason) => {
        const message = refusal ? `refused: ${refusal.code} ${refusal.message}` : `closed before welcome: ${code} ${reason}`;
        settle(new HandshakeError(message, { code: refusal?.code ?? 0, closeCode: code, refused: refusal !== null }));
      };
      ws.addEventListener("open", () => conn.send({ t: "hello", versions: [1], token, client: name }));
      ws.addEventListener("message", (event) => conn.received(event.data));
      ws.addEventListener("close", (event) => conn.ended(event.code, event.reason, false));
      ws.addEventListener("error", () => {}); // a close event follows every error
    });
  }

  /** @param {unknown} data */
  received(data) {
    if (this.closed) return;
    this.lastHeard = Date.now();
    if (typeof data === "string") return; // a text message is not a frame (SPEC §3)
    /** @type {Frame} */
    let frame;
    try {
      frame = decode(/** @type {ArrayBuffer} */ (data), { direction: "server", maxFrame: this.maxFrame });
    } catch (exc) {
      if (exc instanceof FrameError) return; // a frame of a newer server we cannot read: skip it
      throw exc;
    }
    if (frame.t === "ping") {
      this.send({ t: "pong", id: frame.id });
      return;
    }
    this.onFrame(frame);
  }

  /**
   * Send one frame; false when the socket is not open (the frame is dropped).
   * @param {Frame} frame
   * @returns {boolean}
   * @throws {FrameError} for a frame above the server's cap
   */
  send(frame) {
    if (this.closed || this.ws.readyState !== 1) return false;
    const bytes = encode(frame);
    if (bytes.length > this.maxFrame) throw new FrameError(`frame of ${bytes.length} bytes, at most ${this.maxFrame}`, 101);
    this.ws.send(/** @type {Uint8Array<ArrayBuffer>} */ (bytes));
    return true;
  }

  /** @param {number} intervalMs the server's ping interval */
  startLiveness(intervalMs) {
    this.lastHeard = Date.now();
    this.timer = setInterval(() => {
      const quiet = Date.now() - this.lastHeard;
      if (quiet >= 2 * intervalMs) {
        this.abort(true); // heard nothing for two intervals: the socket is dead (SPEC §5.6)
      } else if (quiet >= intervalMs && Date.now() - this.lastPing >= intervalMs) {
        this.lastPing = Date.now();
        this.send({ t: "ping", id: 0 });
      }
    }, Math.max(20, Math.floor(intervalMs / 4)));
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @param {boolean} silent given up for silence, not closed by a peer
   */
  ended(code, reason, silent) {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.onClose(code, reason, silent);
  }

  /** Stop listening: nothing more reaches onFrame or onClose. */
  detach() {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
  }

  /**
   * Close with a WebSocket close code and report the close at once.
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = 1000, reason = "") {
    try { this.ws.close(code, reason); } catch { /* already closed */ }
    this.ended(code, reason, false);
  }

  /**
   * Give the socket up without waiting for a closing handshake a dead peer never answers.
   * @param {boolean} silent
   */
  abort(silent) {
    try { this.ws.close(); } catch { /* already closed */ }
    this.ended(1006, silent ? "silent" : "aborted", silent);
  }
}
