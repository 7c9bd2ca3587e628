/**
 * The two errors of the protocol: a frame that cannot be decoded (FrameError, SPEC §4) and an
 * `error` frame answering a request (ProtocolError, SPEC §12).
 */

/** Error codes of SPEC §12 (unknown codes are handled by their hundreds digit). */
export const ErrorCode = Object.freeze({
  BAD_FRAME: 100,
  FRAME_TOO_LARGE: 101,
  UNKNOWN_TYPE: 102,
  INVALID_FIELD: 103,
  UNSUPPORTED_VERSION: 104,
  NOT_AUTHENTICATED: 105,
  ALREADY_AUTHENTICATED: 106,
  WRONG_DIRECTION: 107,
  TOKEN_INVALID: 200,
  TOKEN_EXPIRED: 201,
  PERMISSION_DENIED: 300,
  CHANNEL_NOT_FOUND: 301,
  NOT_SUBSCRIBED: 302,
  ALREADY_SUBSCRIBED: 303,
  NOT_FOUND: 304,
  RATE_LIMITED: 400,
  TOO_MANY_SUBSCRIPTIONS: 401,
  MESSAGE_TOO_LARGE: 402,
  INTERNAL: 500,
  UNAVAILABLE: 501,
  DRAINING: 502,
});

/** Bytes that are not a valid frame: `code` is the SPEC §12 code, `requestId` the frame's `id`
 * when it could be read (0 otherwise). */
export class FrameError extends Error {
  /**
   * @param {string} message
   * @param {number} code
   * @param {number} [requestId]
   */
  constructor(message, code, requestId = 0) {
    super(message);
    this.name = "FrameError";
    /** @type {number} */
    this.code = code;
    /** @type {number} */
    this.requestId = requestId;
  }
}

/** The server answered a request with an `error` frame (or the request could not be answered:
 * then `code` is 0 and `frame` null). */
export class ProtocolError extends Error {
  /**
   * @param {string} message
   * @param {number} code
   * @param {import("./codec.js").Frame | null} [frame]
   */
  constructor(message, code, frame = null) {
    super(message);
    this.name = "ProtocolError";
    /** @type {number} */
    this.code = code;
    /** @type {import("./codec.js").Frame | null} */
    this.frame = frame;
  }
}
