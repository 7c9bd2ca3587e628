// Posts as `article`s, their media (processing, playable, upgraded, failed) and paged lists with
// endless scroll.

import { avatar, emptyState, errorText, h, nameOf, replace, timeEl, uid } from "./dom.js";
import { commentsToggle } from "./comments.js";
import { likeButton } from "./likes.js";
import { releasePlayers, upgradePlayer, videoPlayer } from "./video.js";

/**
 * @typedef {{id: string, username: string, display_name: string}} SmallUser
 * @typedef {{id: string, author: SmallUser, kind: "text"|"image"|"video", state: "processing"|"published"|"failed",
 *   visibility: string, body: string, media_id: string | null, comments_count: number,
 *   reactions: Record<string, number>, created_at: string}} Post
 * @typedef {import("../../js/src/index.js").Api} Api
 */

/**
 * One post.
 * @param {Post} post
 * @param {Api} api
 */
export function postArticle(post, api) {
  const nameId = uid("post-author");
  const article = h("article", { class: "post", "data-post": post.id, "aria-labelledby": nameId });
  const author = post.author;
  article.append(
    h("header", { class: "post-head" },
      avatar(author),
      h("div", { class: "post-who" },
        h("a", { class: "post-author", id: nameId, href: `#/u/${encodeURIComponent(author.username)}` }, nameOf(author)),
        h("span", { class: "post-meta" }, `@${author.username} · `, timeEl(post.created_at)))),
  );
  if (post.body) article.append(h("p", { class: "post-body" }, post.body));
  if (post.kind !== "text") {
    const media = h("div", { class: "post-media" });
    article.append(media);
    void renderMedia(media, post, api);
  }
  if (post.state === "published") addActions(article, post, api);
  return article;
}

/**
 * Like and comments, once a post is published.
 * @param {HTMLElement} article
 * @param {Post} post
 * @param {Api} api
 */
function addActions(article, post, api) {
  const comments = commentsToggle(post, api);
  article.append(h("div", { class: "post-actions" }, ...likeButton(post), ...comments.controls), comments.thread);
}

/**
 * The media area of a post, from its state and the media's URLs.
 * @param {HTMLElement} box
 * @param {Post} post
 * @param {Api} api
 */
async function renderMedia(box, post, api) {
  if (post.state === "failed") {
    replace(box, h("p", { class: "media-note media-failed" }, "This video could not be processed."));
    return;
  }
  if (post.state === "processing" || !post.media_id) {
    showProcessing(box);
    recheckLater(box, post, api);
    return;
  }
  try {
    const media = await api.media(post.media_id);
    const url = media.urls?.playlist;
    if (!url) {
      showProcessing(box);
      return;
    }
    releasePlayers(box);
    replace(box, videoPlayer(url, media.urls.poster ?? null, `Video by ${nameOf(post.author)}`));
    const article = box.closest("article");
    if (article && post.state === "published" && !article.querySelector(".post-actions")) addActions(article, post, api);
    const { width, height } = media;
    if (width && height) box.style.aspectRatio = `${width} / ${height}`;
  } catch (err) {
    replace(box, h("p", { class: "media-note" }, errorText(err)));
  }
}

const RECHECK_MS = 15_000;

/**
 * Media frames normally move a post on; should one be missed (it arrived before the post was
 * on screen), look again now and then while the post is shown as processing.
 * @param {HTMLElement} box
 * @param {Post} post
 * @param {Api} api
 */
function recheckLater(box, post, api) {
  setTimeout(async () => {
    if (!box.isConnected || !box.querySelector(".media-processing")) return;
    try {
      const fresh = await api.post(post.id);
      if (fresh.state !== "processing" && box.querySelector(".media-processing")) await renderMedia(box, fresh, api);
      else recheckLater(box, post, api);
    } catch { /* deleted meanwhile */ }
  }, RECHECK_MS);
}

/** @param {HTMLElement} box @param {string} [detail] */
function showProcessing(box, detail = "") {
  box.style.aspectRatio = "";
  replace(box, h("div", { class: "media-note media-processing" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    h("span", {}, "Processing", detail ? ` ${detail}` : "…"),
    h("span", { class: "media-hint" }, "Your video will play here as soon as it is ready.")));
}

/**
 * A media frame from `user:<me>`: bring every article of its post up to date.
 * @param {{phase: string, upload: string, post?: string, data?: Record<string, unknown>}} frame
 * @param {Api} api
 */
export async function applyMediaFrame(frame, api) {
  if (!frame.post) return;
  const articles = document.querySelectorAll(`article[data-post="${CSS.escape(frame.post)}"]`);
  if (!articles.length) return;
  for (const article of articles) {
    const box = /** @type {HTMLElement | null} */ (article.querySelector(".post-media"));
    if (!box) continue;
    if (frame.phase === "progress" && box.querySelector(".media-processing")) {
      const percent = Number(frame.data?.percent);
      if (Number.isFinite(percent)) showProcessing(box, `${Math.round(percent)}%…`);
    } else if (frame.phase === "failed") {
      replace(box, h("p", { class: "media-note media-failed" }, "This video could not be processed."));
    } else if (frame.phase === "good_enough" && !box.querySelector("video")) {
      try {
        await renderMedia(box, await api.post(frame.post), api);
      } catch { /* the post was deleted meanwhile */ }
    } else if (frame.phase === "upgraded" || (frame.phase === "good_enough" && box.querySelector("video"))) {
      const video = box.querySelector("video");
      if (!video) {
        await renderMedia(box, await api.post(frame.post), api);
        continue;
      }
      const media = await api.media(frame.upload);
      if (media.urls?.playlist) upgradePlayer(video, media.urls.playlist);
    }
  }
}

/**
 * A list of posts with endless scroll: pages are fetched as the end comes into view (or the
 * "Show older posts" button is pressed).
 * @param {{api: Api, load: (cursor: string | null) => Promise<{items: Post[], next_cursor: string | null}>,
 *          empty: [string, string], label: string}} options
 */
export function postFeed({ api, load, empty, label }) {
  const list = h("div", { class: "feed", "aria-label": label, role: "feed", "aria-busy": "false" });
  const status = h("p", { class: "feed-status", role: "status" });
  const more = h("button", { type: "button", class: "button ghost more", hidden: true }, "Show older posts");
  const root = h("section", { class: "feed-wrap" }, list, status, more);
  /** @type {string | null} */
  let cursor = null;
  let done = false;
  let loading = false;
  const shown = new Set();

  async function next() {
    if (loading || done) return;
    loading = true;
    list.setAttribute("aria-busy", "true");
    status.textContent = "Loading…";
    try {
      const page = await load(cursor);
      for (const post of page.items) {
        if (shown.has(post.id)) continue;
        shown.add(post.id);
        list.append(postArticle(post, api));
      }
      cursor = page.next_cursor;
      done = !cursor;
      status.textContent = "";
      if (!shown.size) replace(status, emptyState(...empty));
      else if (done && shown.size > 5) status.textContent = "You're all caught up.";
    } catch (err) {
      status.textContent = errorText(err);
    } finally {
      loading = false;
      list.setAttribute("aria-busy", "false");
      more.hidden = done;
    }
  }

  const sentinel = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) void next();
  }, { rootMargin: "600px 0px" });
  sentinel.observe(more);
  more.addEventListener("click", () => void next());
  void next();

  return {
    root,
    /** Put posts at the top (newest first), skipping ones already shown. @param {Post[]} posts */
    prepend(posts) {
      for (const post of posts) {
        // A newer state of a post shown as processing (its frames may have come first): replace it.
        const old = shown.has(post.id) ? list.querySelector(`article[data-post="${CSS.escape(post.id)}"]`) : null;
        if (old && post.state !== "processing" && old.querySelector(".media-processing")) {
          releasePlayers(old);
          old.replaceWith(postArticle(post, api));
        }
      }
      const fresh = posts.filter((p) => !shown.has(p.id));
      for (const post of [...fresh].reverse()) {
        shown.add(post.id);
        list.prepend(postArticle(post, api));
      }
      if (fresh.length) status.replaceChildren();
      return fresh.length;
    },
    /** @param {string} id */
    has(id) { return shown.has(id); },
    /** @param {string} id */
    remove(id) {
      shown.delete(id);
      for (const el of list.querySelectorAll(`article[data-post="${CSS.escape(id)}"]`)) {
        releasePlayers(el);
        el.remove();
      }
    },
    destroy() {
      sentinel.disconnect();
      releasePlayers(list);
    },
  };
}
