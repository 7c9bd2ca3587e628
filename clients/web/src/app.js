// The Amaro Than web app: the shell (navigation, people search, connection state), hash routes,
// and the one socket every view shares.

import { Api, Client } from "../../js/src/index.js";
import { h, refreshTimes } from "./dom.js";
import { useLikes } from "./likes.js";
import { applyMediaFrame } from "./posts.js";
import { authView } from "./views/auth.js";
import { homeView } from "./views/home.js";
import { profileView } from "./views/profile.js";
import { roomView } from "./views/room.js";
import { roomsView } from "./views/rooms.js";

/**
 * @typedef {{ws: string[], uploads: string, api: string}} Config
 * @typedef {{id: string, username: string, display_name: string}} User
 * @typedef {{api: Api, client: Client, config: Config, me: User}} Ctx
 */

const root = /** @type {HTMLElement} */ (document.getElementById("app"));

/** @returns {Promise<Config>} */
async function loadConfig() {
  const answer = await fetch("/app/config.json", { cache: "no-cache" });
  if (!answer.ok) throw new Error(`config: HTTP ${answer.status}`);
  return answer.json();
}

/** The current route from the hash: [name, param]. */
function route() {
  const path = location.hash.replace(/^#/, "") || "/";
  let m = path.match(/^\/u\/([^/]+)$/);
  if (m) return ["profile", decodeURIComponent(m[1])];
  m = path.match(/^\/rooms\/([0-9a-f-]{36})$/);
  if (m) return ["room", m[1]];
  if (path === "/rooms") return ["rooms", ""];
  return ["home", ""];
}

/**
 * The signed-in shell; returns a function that tears it down (log out).
 * @param {Api} api
 * @param {Config} config
 * @param {User} me
 */
function signedIn(api, config, me) {
  const client = new Client({ endpoints: config.ws, token: () => api.accessToken(), name: "amaro-web/0.1" });
  /** @type {Ctx} */
  const ctx = { api, client, config, me };
  useLikes(client, me.id);

  const connection = h("div", { class: "connection", role: "status", "aria-label": "Connection" });
  const search = h("input", { id: "find-people", type: "text", enterkeyhint: "go", class: "input search", placeholder: "Find people",
    autocomplete: "off", autocapitalize: "none", spellcheck: "false" });
  const searchForm = h("form", { class: "search-form", role: "search" },
    h("label", { for: "find-people", class: "visually-hidden" }, "Find people"), search);
  const logout = h("button", { type: "button", class: "button ghost small" }, "Log out");
  /** @param {string} href @param {string} label @param {string} icon */
  const link = (href, label, icon) =>
    h("a", { href, class: "nav-link", "data-route": icon }, h("span", { class: `nav-icon icon-${icon}`, "aria-hidden": "true" }), h("span", {}, label));
  const nav = h("nav", { class: "nav", "aria-label": "Main" },
    link("#/", "Home", "home"), link("#/rooms", "Rooms", "rooms"),
    link(`#/u/${encodeURIComponent(me.username)}`, "Profile", "profile"));
  const main = h("main", { id: "main", class: "main", tabindex: -1 });
  const header = h("header", { class: "topbar" },
    h("a", { href: "#/", class: "brand", "aria-label": "Amaro Than" }, h("span", { class: "logo", "aria-hidden": "true" }, "A"),
      h("span", { class: "brand-name" }, "Amaro Than")),
    searchForm, logout);
  const skip = h("a", { href: "#main", class: "skip" }, "Skip to content");
  root.replaceChildren(skip, header, connection, h("div", { class: "layout" }, nav, main));

  skip.addEventListener("click", (e) => {
    e.preventDefault();
    main.focus();
  });

  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = search.value.trim().replace(/^@/, "").toLowerCase();
    if (!name) return;
    search.value = "";
    location.hash = `#/u/${encodeURIComponent(name)}`;
  });
  logout.addEventListener("click", () => void api.logout());

  // Connection state: quiet while connected, visible once a working socket was lost.
  let wasOpen = false;
  const offState = client.on("state", (/** @type {string} */ state) => {
    if (state === "open") wasOpen = true;
    const down = wasOpen && (state === "reconnecting" || state === "connecting");
    // "closed" without our asking: the server said not to come back (or the session ended).
    const gone = state === "closed" && (wasOpen || client.stopReason !== null);
    connection.textContent = down ? "Reconnecting…" : gone ? "Disconnected. Reload the page to reconnect." : "";
    connection.classList.toggle("down", down || gone);
  });

  const offMedia = client.on("media", (/** @type {any} */ frame) => {
    if (frame.ch === `user:${me.id}`) void applyMediaFrame(frame, api).catch(() => {});
  });

  /** @type {(() => void) | null} */
  let unmount = null;
  let first = true;
  function show() {
    unmount?.();
    unmount = null;
    main.replaceChildren();
    window.scrollTo(0, 0);
    const [name, param] = route();
    for (const a of nav.querySelectorAll("a")) {
      const current = a.getAttribute("data-route") === (name === "room" ? "rooms" : name) &&
        (name !== "profile" || param === me.username);
      if (current) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = { home: "Home", rooms: "Rooms", room: "Room", profile: `@${param}` }[name] + " · Amaro Than";
    if (name === "profile") unmount = profileView(main, ctx, param);
    else if (name === "rooms") unmount = roomsView(main, ctx);
    else if (name === "room") unmount = roomView(main, ctx, param);
    else unmount = homeView(main, ctx);
    // Move focus to the new page's heading, so keyboard and screen reader users start there.
    if (!first) main.querySelector("h1")?.focus({ preventScroll: true });
    first = false;
  }
  window.addEventListener("hashchange", show);
  const clock = setInterval(() => refreshTimes(root), 30_000);

  // Presence: "away" while the tab is hidden, "online" when it is back.
  const onVisibility = () => {
    if (client.state === "open") client.setStatus(document.visibilityState === "visible" ? "online" : "away");
  };
  document.addEventListener("visibilitychange", onVisibility);

  client.connect().catch(() => { /* it stopped for good: the Connection status says so */ });
  client.subscribe(`user:${me.id}`).catch((/** @type {unknown} */ err) => console.warn("user channel", err));
  show();

  return () => {
    window.removeEventListener("hashchange", show);
    document.removeEventListener("visibilitychange", onVisibility);
    clearInterval(clock);
    unmount?.();
    offState();
    offMedia();
    client.close();
  };
}

async function start() {
  /** @type {Config} */
  let config;
  try {
    config = await loadConfig();
  } catch {
    root.replaceChildren(h("main", { class: "main" }, h("h1", { class: "hero-title" }, "Amaro Than"),
      h("p", { role: "alert" }, "The service is not reachable right now. Please reload in a moment.")));
    return;
  }
  const api = new Api({ baseUrl: "" });
  /** @type {(() => void) | null} */
  let teardown = null;
  /** @type {string | null} */
  let current = null;

  /** @param {User | null} user */
  function render(user) {
    if (user && user.id === current) return;
    teardown?.();
    teardown = null;
    current = user ? user.id : null;
    if (user) {
      teardown = signedIn(api, config, user);
    } else {
      const main = h("main", { id: "main", class: "main main-auth" });
      root.replaceChildren(main);
      authView(main, api);
      document.title = "Amaro Than";
    }
  }
  api.onSession(render);
  const user = api.user;
  render(user ? { id: user.id, username: user.username, display_name: user.display_name } : null);
}

void start();
