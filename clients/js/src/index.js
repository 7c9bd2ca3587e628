/**
 * @amaro/client: the browser client of Amaro Than (SPEC.md): the socket protocol, the HTTP API
 * and resumable uploads.
 */
export { decode, encode, DEFAULT_MAX_FRAME } from "./codec.js";
export { ErrorCode, FrameError, ProtocolError } from "./errors.js";
