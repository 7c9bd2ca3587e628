// Likes on posts: a ❤️ reaction over the socket. The server counts reactions but does not say
// whose they are, so the posts this person liked are remembered in this browser.

import { h, replace, uid } from "./dom.js";

const EMOJI = "❤️";
const REMEMBERED = 1000;

/** @type {{client: import("../../js/src/index.js").Client, key: string} | null} */
let current = null;

/**
 * Who likes, and through which socket (set when a person signs in).
 * @param {import("../../js/src/index.js").Client} client
 * @param {string} userId
 */
export function useLikes(client, userId) {
  current = { client, key: `amaro.likes.${userId}` };
}

/** @returns {string[]} */
function liked() {
  if (!current) return [];
  try {
    const ids = JSON.parse(localStorage.getItem(current.key) ?? "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

/** @param {string} postId @param {boolean} on */
function remember(postId, on) {
  if (!current) return;
  const ids = liked().filter((id) => id !== postId);
  if (on) ids.push(postId);
  try {
    localStorage.setItem(current.key, JSON.stringify(ids.slice(-REMEMBERED)));
  } catch { /* storage full or off: the like still counts */ }
}

/**
 * The like button of a post and its count.
 * @param {{id: string, reactions?: Record<string, number>}} post
 */
export function likeButton(post) {
  let on = liked().includes(post.id);
  let total = Number(post.reactions?.[EMOJI] ?? 0);
  const countId = uid("likes");
  const count = h("span", { class: "like-count", id: countId });
  const button = h("button", { type: "button", class: "like", "aria-pressed": String(on), "aria-describedby": countId },
    h("span", { class: "heart", "aria-hidden": "true" }), "Like");
  const render = () => {
    button.setAttribute("aria-pressed", String(on));
    replace(count, total > 0 ? String(total) : "", total > 0 ? h("span", { class: "visually-hidden" }, total === 1 ? " like" : " likes") : "");
  };
  render();
  button.addEventListener("click", async () => {
    if (!current) return;
    on = !on;
    total = Math.max(0, total + (on ? 1 : -1));
    render();
    try {
      await current.client.react("post", post.id, EMOJI, on);
      remember(post.id, on);
    } catch {
      on = !on;
      total = Math.max(0, total + (on ? 1 : -1));
      render();
    }
  });
  return [button, count];
}
