// Comments under a post: opened on demand, oldest first, one level of replies shown indented.

import { avatar, errorText, h, nameOf, replace, timeEl, uid } from "./dom.js";

/**
 * @typedef {{id: string, parent_id: string | null, author: {id: string, username: string, display_name: string},
 *   body: string, created_at: string}} Comment
 * @typedef {import("../../js/src/index.js").Api} Api
 */

/** @param {Comment} comment */
function commentItem(comment) {
  return h("li", { class: `comment${comment.parent_id ? " reply" : ""}` },
    avatar(comment.author, "s"),
    h("div", { class: "comment-bubble" },
      h("p", { class: "msg-meta" },
        h("a", { class: "msg-author", href: `#/u/${encodeURIComponent(comment.author.username)}` }, nameOf(comment.author)),
        " ", timeEl(comment.created_at)),
      h("p", { class: "msg-body" }, comment.body)));
}

/**
 * The "Comments" toggle of a post and the thread it opens.
 * @param {{id: string, comments_count?: number}} post
 * @param {Api} api
 */
export function commentsToggle(post, api) {
  let total = Number(post.comments_count ?? 0);
  const threadId = uid("comments");
  const inputId = uid("comment-input");
  const toggle = h("button", { type: "button", class: "like", "aria-expanded": "false", "aria-controls": threadId },
    h("span", { class: "bubble-icon", "aria-hidden": "true" }), "Comments");
  const count = h("span", { class: "like-count" });
  const list = h("ul", { class: "comments" });
  const status = h("p", { class: "feed-status", role: "status" });
  const input = h("input", { id: inputId, class: "input", maxlength: 2000, autocomplete: "off", placeholder: "Add a comment" });
  const error = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "comment-form" },
    h("label", { for: inputId, class: "visually-hidden" }, "Comment"), input,
    h("button", { type: "submit", class: "button primary small" }, "Reply"));
  const thread = h("div", { id: threadId, class: "thread", hidden: true }, list, status, error, form);
  let loaded = false;

  const renderCount = () => replace(count, total > 0 ? String(total) : "",
    total > 0 ? h("span", { class: "visually-hidden" }, total === 1 ? " comment" : " comments") : "");
  renderCount();

  async function load() {
    status.textContent = "Loading…";
    try {
      /** @type {Comment[]} */
      const all = [];
      /** @type {string | undefined} */
      let cursor;
      do {
        const page = await api.comments(post.id, { cursor, limit: 100 });
        all.push(...page.items);
        cursor = page.next_cursor ?? undefined;
      } while (cursor && all.length < 300);
      replace(list, all.map(commentItem));
      status.textContent = all.length ? "" : "No comments yet.";
      loaded = true;
    } catch (err) {
      status.textContent = errorText(err);
    }
  }

  toggle.addEventListener("click", () => {
    const open = thread.hidden;
    thread.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open && !loaded) void load();
    if (open) input.focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = input.value.trim();
    if (!body) return;
    error.textContent = "";
    try {
      const comment = /** @type {Comment} */ (await api.comment(post.id, { body }));
      input.value = "";
      list.append(commentItem(comment));
      status.textContent = "";
      total += 1;
      renderCount();
    } catch (err) {
      error.textContent = errorText(err);
    }
  });

  return { controls: [toggle, count], thread };
}
