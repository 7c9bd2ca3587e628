/**
 * The HTTP API (SPEC §2, "The social API"): accounts and sessions, people and follows, blocks,
 * rooms, posts, comments, timelines and media. JSON in and out; a refusal throws ApiError with the
 * server's stable `code`.
 *
 * The session (the grant of signup/login/refresh) is kept in `storage` under "amaro.session", so
 * a reload stays logged in. The access token is refreshed shortly before it expires, and once
 * more when a request is answered 401; refresh tokens rotate (each refresh returns a new one and
 * the old one stops working), so a tab that finds its refresh token already spent adopts the one
 * another tab stored.
 *
 *     const api = new Api({ baseUrl: "" });
 *     await api.login({ username: "ana", password: "a-long-passphrase" });
 *     const room = await api.directRoom(friendId);
 *     const page = await api.home({ limit: 20 });   // {items, next_cursor}
 */

const STORAGE_KEY = "amaro.session";
/** Refresh when the access token has less than this left. */
const REFRESH_MARGIN_MS = 60_000;

/**
 * @typedef {{id: string, username: string, display_name: string}} SessionUser
 * @typedef {{user: SessionUser, access_token: string, refresh_token: string, expires_at: number}} StoredSession
 * @typedef {{getItem(key: string): string | null, setItem(key: string, value: string): void,
 *            removeItem(key: string): void}} SessionStorage
 * @typedef {{cursor?: string | null, limit?: number}} PageOptions
 * @typedef {{items: any[], next_cursor: string | null}} Page
 */

/** The server refused a request: HTTP `status`, the body's `code`, and `retryAfter` (seconds) on 429/503. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {number | null} [retryAfter]
   */
  constructor(status, code, message, retryAfter = null) {
    super(`${status} ${code}: ${message}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** @param {string} id */
const seg = (id) => encodeURIComponent(id);

export class Api {
  /**
   * @param {{baseUrl?: string, storage?: SessionStorage | null, fetch?: typeof globalThis.fetch}} [options]
   *   `baseUrl`: the node's origin ("" for the page's own); `storage`: where the session is kept
   *   (null: in memory only)
   */
  constructor({ baseUrl = "", storage = globalThis.localStorage ?? null, fetch = globalThis.fetch } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.storage = storage;
    // Called as a method of this object, a browser's own fetch throws "Illegal invocation".
    this.fetchImpl = fetch === globalThis.fetch ? fetch.bind(globalThis) : fetch;
    /** @type {StoredSession | null} */
    this.session = this.load();
    /** @type {Promise<string> | null} the refresh in flight, shared by every caller */
    this.refreshing = null;
    /** @type {Set<(user: SessionUser | null) => void>} */
    this.sessionListeners = new Set();
  }

  // -- session ------------------------------------------------------------------------------

  /** @returns {StoredSession | null} */
  load() {
    try {
      const raw = this.storage?.getItem(STORAGE_KEY);
      return raw ? /** @type {StoredSession} */ (JSON.parse(raw)) : null;
    } catch {
      return null;
    }
  }

  /** @param {StoredSession | null} session */
  save(session) {
    const before = this.session?.user.id ?? null;
    this.session = session;
    try {
      if (session === null) this.storage?.removeItem(STORAGE_KEY);
      else this.storage?.setItem(STORAGE_KEY, JSON.stringify(session));
    } catch { /* storage full or denied: the session lives in memory */ }
    if ((session?.user.id ?? null) !== before) {
      for (const cb of this.sessionListeners) cb(session?.user ?? null);
    }
  }

  /**
   * @param {any} grant
   * @returns {SessionUser}
   */
  keep(grant) {
    this.save({ user: grant.user, access_token: grant.access_token, refresh_token: grant.refresh_token,
      expires_at: Date.now() + grant.expires_in * 1000 });
    return grant.user;
  }

  /**
   * The signed-in user ({id, username, display_name}), or null. `profile(id)` fetches anyone's.
   * @returns {SessionUser | null}
   */
  get user() {
    return this.session?.user ?? null;
  }

  /**
   * Call `cb(user | null)` when the signed-in user changes (login, logout, expiry).
   * @param {(user: SessionUser | null) => void} cb
   * @returns {() => void} unsubscribe
   */
  onSession(cb) {
    this.sessionListeners.add(cb);
    return () => this.sessionListeners.delete(cb);
  }

  /**
   * Create an account and log in.
   * @param {{username: string, password: string, display_name?: string}} fields
   * @returns {Promise<SessionUser>}
   */
  async signup({ username, password, display_name }) {
    const body = display_name ? { username, password, display_name } : { username, password };
    return this.keep(await this.call("POST", "/auth/signup", body, { auth: false }));
  }

  /**
   * @param {{username: string, password: string}} fields
   * @returns {Promise<SessionUser>}
   */
  async login({ username, password }) {
    return this.keep(await this.call("POST", "/auth/login", { username, password }, { auth: false }));
  }

  /** Revoke the refresh token and forget the session. */
  async logout() {
    const session = this.session;
    this.save(null);
    if (session === null) return;
    try {
      await this.call("POST", "/auth/logout", { refresh_token: session.refresh_token }, { auth: false });
    } catch { /* the session is gone locally whatever the server says */ }
  }

  /**
   * A valid access token, refreshed first when it is near expiry (or when `refresh` asks).
   * @param {{refresh?: boolean}} [options]
   * @returns {Promise<string>}
   * @throws {ApiError} 401 `not_logged_in` without a session, or the refresh's refusal
   */
  async accessToken({ refresh = false } = {}) {
    const stored = this.load(); // another tab may have refreshed (and rotated) meanwhile
    if (stored !== null && this.session !== null && stored.user.id === this.session.user.id
        && stored.expires_at > this.session.expires_at) {
      this.session = stored;
    }
    const session = this.session;
    if (session === null) throw new ApiError(401, "not_logged_in", "log in first");
    if (!refresh && session.expires_at - Date.now() > REFRESH_MARGIN_MS) return session.access_token;
    if (this.refreshing === null) {
      this.refreshing = this.refresh(session).finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  /**
   * Trade the refresh token for a new grant.
   * @param {StoredSession} session
   * @returns {Promise<string>}
   */
  async refresh(session) {
    try {
      const grant = await this.call("POST", "/auth/refresh", { refresh_token: session.refresh_token }, { auth: false });
      this.keep(grant);
      return grant.access_token;
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 401) {
        const stored = this.load();
        if (stored !== null && stored.refresh_token !== session.refresh_token && stored.expires_at > Date.now()) {
          this.session = stored; // another tab rotated the token first
          return stored.access_token;
        }
        this.save(null); // the session is over: log in again
      }
      throw exc;
    }
  }

  // -- requests -----------------------------------------------------------------------------

  /**
   * A request under /api/v1 with the access token; a 401 refreshes the token and retries once.
   * @param {string} method
   * @param {string} path e.g. "/me"
   * @param {unknown} [body] sent as JSON
   * @param {{query?: Record<string, string | number | boolean | null | undefined>}} [options]
   * @returns {Promise<any>} the JSON answer (null for 204)
   */
  async request(method, path, body, { query } = {}) {
    return this.call(method, path, body, { query, auth: this.session !== null });
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} body
   * @param {{query?: Record<string, string | number | boolean | null | undefined>, auth?: boolean}} options
   * @returns {Promise<any>}
   */
  async call(method, path, body, { query, auth = true }) {
    let url = `${this.baseUrl}/api/v1${path}`;
    const pairs = Object.entries(query ?? {}).filter(([, v]) => v !== undefined && v !== null);
    if (pairs.length) url += "?" + new URLSearchParams(pairs.map(([k, v]) => [k, String(v)])).toString();
    for (let attempt = 0; ; attempt++) {
      /** @type {Record<string, string>} */
      const headers = { Accept: "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (auth) headers.Authorization = `Bearer ${await this.accessToken({ refresh: attempt > 0 })}`;
      const response = await this.fetchImpl(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      if (response.status === 401 && auth && attempt === 0) continue;
      return answer(response);
    }
  }

  // -- me and people --------------------------------------------------------------------------

  /** My profile. */
  me() { return this.request("GET", "/me"); }
  /** @param {{display_name?: string, bio?: string, private?: boolean}} patch */
  updateMe(patch) { return this.request("PATCH", "/me", patch); }
  /** @param {string} id a user's profile */
  profile(id) { return this.request("GET", `/users/${seg(id)}`); }
  /** @param {string} username */
  userByName(username) { return this.request("GET", `/users/by-name/${seg(username)}`); }
  /** @param {string} id how I relate to a user: {following, followed_by, requested, requested_by, blocked} */
  relationship(id) { return this.request("GET", `/users/${seg(id)}/relationship`); }

  // -- follows and blocks ---------------------------------------------------------------------

  /** @param {string} id @returns {Promise<{state: "following" | "requested"}>} */
  follow(id) { return this.request("POST", `/users/${seg(id)}/follow`); }
  /** @param {string} id unfollow, or withdraw a follow request */
  unfollow(id) { return this.request("DELETE", `/users/${seg(id)}/follow`); }
  /** @param {string} id @param {PageOptions} [page] @returns {Promise<Page>} */
  followers(id, { cursor, limit } = {}) { return this.request("GET", `/users/${seg(id)}/followers`, undefined, { query: { cursor, limit } }); }
  /** @param {string} id @param {PageOptions} [page] @returns {Promise<Page>} */
  following(id, { cursor, limit } = {}) { return this.request("GET", `/users/${seg(id)}/following`, undefined, { query: { cursor, limit } }); }
  /** @param {PageOptions} [page] follow requests waiting for me @returns {Promise<Page>} */
  followRequests({ cursor, limit } = {}) { return this.request("GET", "/me/follow-requests", undefined, { query: { cursor, limit } }); }
  /** @param {string} id the requester */
  acceptRequest(id) { return this.request("POST", `/me/follow-requests/${seg(id)}/accept`); }
  /** @param {string} id the requester */
  declineRequest(id) { return this.request("POST", `/me/follow-requests/${seg(id)}/decline`); }
  /** @param {string} id */
  block(id) { return this.request("POST", `/users/${seg(id)}/block`); }
  /** @param {string} id */
  unblock(id) { return this.request("DELETE", `/users/${seg(id)}/block`); }
  /** @param {PageOptions} [page] users I block @returns {Promise<Page>} */
  blocks({ cursor, limit } = {}) { return this.request("GET", "/me/blocks", undefined, { query: { cursor, limit } }); }

  // -- rooms ----------------------------------------------------------------------------------

  /** @param {PageOptions} [page] my rooms, most recently active first @returns {Promise<Page>} */
  rooms({ cursor, limit } = {}) { return this.request("GET", "/rooms", undefined, { query: { cursor, limit } }); }
  /** @param {string} id a room with its members */
  room(id) { return this.request("GET", `/rooms/${seg(id)}`); }
  /** @param {{kind: "direct" | "group", members: string[], title?: string}} fields */
  createRoom({ kind, members, title }) {
    return this.request("POST", "/rooms", title === undefined ? { kind, members } : { kind, members, title });
  }
  /** @param {string} userId the direct room with a user (created on first use) */
  directRoom(userId) { return this.createRoom({ kind: "direct", members: [userId] }); }
  /** @param {string} id @param {string} title */
  renameRoom(id, title) { return this.request("PATCH", `/rooms/${seg(id)}`, { title }); }
  /** @param {string} id @param {string[]} userIds */
  addMembers(id, userIds) { return this.request("POST", `/rooms/${seg(id)}/members`, { user_ids: userIds }); }
  /** @param {string} id @param {string} userId */
  removeMember(id, userId) { return this.request("DELETE", `/rooms/${seg(id)}/members/${seg(userId)}`); }
  /** @param {string} id leave a group room */
  async leaveRoom(id) {
    const me = this.session?.user.id;
    if (!me) throw new ApiError(401, "not_logged_in", "log in first");
    return this.removeMember(id, me);
  }
  /** @param {string} id @param {string} userId @param {"owner" | "admin" | "member"} role */
  setRole(id, userId, role) { return this.request("PATCH", `/rooms/${seg(id)}/members/${seg(userId)}`, { role }); }
  /** @param {string} id @param {boolean} on */
  mute(id, on) { return this.request(on ? "PUT" : "DELETE", `/rooms/${seg(id)}/mute`); }

  // -- posts and comments ---------------------------------------------------------------------

  /** @param {string} id */
  post(id) { return this.request("GET", `/posts/${seg(id)}`); }
  /**
   * A text post, or the media post of an upload (`upload_id`, or `post_id` as the upload answered).
   * @param {{body?: string, visibility?: "public" | "followers" | "private", upload_id?: string, post_id?: string,
   *          kind?: "image" | "video"}} fields
   */
  createPost(fields) {
    return this.request("POST", "/posts", Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)));
  }
  /** @param {string} id @param {{body?: string, visibility?: string}} patch */
  editPost(id, patch) { return this.request("PATCH", `/posts/${seg(id)}`, patch); }
  /** @param {string} id */
  deletePost(id) { return this.request("DELETE", `/posts/${seg(id)}`); }
  /** @param {string} postId @param {PageOptions} [page] oldest first @returns {Promise<Page>} */
  comments(postId, { cursor, limit } = {}) { return this.request("GET", `/posts/${seg(postId)}/comments`, undefined, { query: { cursor, limit } }); }
  /** @param {string} postId @param {{body: string, parent_id?: string}} fields */
  comment(postId, { body, parent_id }) {
    return this.request("POST", `/posts/${seg(postId)}/comments`, parent_id ? { body, parent_id } : { body });
  }
  /** @param {string} id */
  deleteComment(id) { return this.request("DELETE", `/comments/${seg(id)}`); }

  // -- timelines and media --------------------------------------------------------------------

  /** @param {PageOptions} [page] my home timeline, newest first @returns {Promise<Page>} */
  home({ cursor, limit } = {}) { return this.request("GET", "/timelines/home", undefined, { query: { cursor, limit } }); }
  /** @param {string} userId @param {PageOptions} [page] a user's posts, newest first @returns {Promise<Page>} */
  userPosts(userId, { cursor, limit } = {}) { return this.request("GET", `/users/${seg(userId)}/posts`, undefined, { query: { cursor, limit } }); }
  /** @param {string} uploadId the state and signed URLs of a post's media */
  media(uploadId) { return this.request("GET", `/media/${seg(uploadId)}`); }
}

/**
 * The JSON of a success, or the ApiError of a refusal.
 * @param {Response} response
 * @returns {Promise<any>}
 */
async function answer(response) {
  const text = await response.text();
  /** @type {any} */
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return data;
  const error = data && typeof data === "object" && data.error ? data.error : {};
  const retry = response.headers.get("Retry-After");
  throw new ApiError(response.status, String(error.code ?? "http_error"), String(error.message ?? (text || response.statusText)),
    retry === null || Number.isNaN(Number(retry)) ? null : Number(retry));
}
