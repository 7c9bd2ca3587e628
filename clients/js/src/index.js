/**
 * @amaro/client: the browser client of Amaro Than (protocol/SPEC.md): the socket protocol
 * (Client), the HTTP API (Api) and resumable uploads (upload).
 */
export { Api, ApiError } from "./api.js";
export { backoffDelay, Endpoints } from "./backoff.js";
export { Client } from "./client.js";
export { decode, encode, DEFAULT_MAX_FRAME } from "./codec.js";
export { ErrorCode, FrameError, ProtocolError } from "./errors.js";
export { Session } from "./session.js";
export { upload } from "./upload.js";
