// Small DOM helpers. User text only ever reaches the page as text nodes (never as HTML).

/**
 * @typedef {Record<string, string | number | boolean | null | undefined | EventListener>} Attrs
 * @typedef {Node | string | number | null | undefined | false} Child
 */

/**
 * Create an element. Keys starting with "on" add listeners; `class` sets className; other keys
 * are attributes (false/null/undefined skip them, true sets them empty).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    } else if (key === "class") {
      el.className = String(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {(Child | Child[])[]} children
 */
export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "object" ? child : String(child));
  }
}

/** @param {Element} el @param {...(Child | Child[])} children */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let idCounter = 0;
/** A document-unique id for label/aria wiring. @param {string} prefix */
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

const PALETTE = 8;

/** Initials of a name: "Ana Maria" -> "AM". @param {string} name */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : [words[0] ?? "?"];
  return letters.map((w) => Array.from(w)[0] ?? "").join("").toUpperCase() || "?";
}

/** A stable colour slot for a user. @param {string} key */
function hue(key) {
  let sum = 0;
  for (const ch of key) sum = (sum * 31 + ch.charCodeAt(0)) >>> 0;
  return sum % PALETTE;
}

/**
 * An avatar from initials; decorative (the name is always written next to it).
 * @param {{id?: string, display_name?: string, username?: string}} user
 * @param {"s" | "m" | "l"} [size]
 */
export function avatar(user, size = "m") {
  const name = user.display_name || user.username || "?";
  return h("span", { class: `avatar avatar-${size} tone-${hue(user.id || name)}`, "aria-hidden": "true" },
    initials(name));
}

/** @param {{display_name?: string, username?: string} | null | undefined} user */
export function nameOf(user) {
  return (user && (user.display_name || user.username)) || "Someone";
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * "now", "5m", "3h", "2d", then a date.
 * @param {number} ms epoch milliseconds
 * @param {number} [now]
 */
export function relativeTime(ms, now = Date.now()) {
  const ago = now - ms;
  if (ago < MINUTE) return "now";
  if (ago < HOUR) return `${Math.floor(ago / MINUTE)}m`;
  if (ago < DAY) return `${Math.floor(ago / HOUR)}h`;
  if (ago < 7 * DAY) return `${Math.floor(ago / DAY)}d`;
  return new Date(ms).toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/**
 * A <time> element with a relative label, refreshed by `refreshTimes`.
 * @param {number | string} when epoch ms or ISO text
 */
export function timeEl(when) {
  const ms = typeof when === "number" ? when : Date.parse(when);
  const date = new Date(ms);
  return h("time", { datetime: date.toISOString(), title: date.toLocaleString(), "data-ms": ms },
    relativeTime(ms));
}

/** Update every relative time under `root`. @param {ParentNode} root */
export function refreshTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("time[data-ms]")) {
    el.textContent = relativeTime(Number(el.getAttribute("data-ms")), now);
  }
}

/**
 * An empty state: a short headline and a hint.
 * @param {string} title
 * @param {string} hint
 */
export function emptyState(title, hint) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title" }, title), h("p", { class: "empty-hint" }, hint));
}

/** Human text of an error for an alert. @param {unknown} err */
export function errorText(err) {
  if (err && typeof err === "object" && "message" in err && typeof err.message === "string" && err.message) {
    return err.message;
  }
  return "Something went wrong. Please try again.";
}
