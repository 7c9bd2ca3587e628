// Home: the composer, the live "New posts" banner and the home timeline.

import { composer } from "../composer.js";
import { h } from "../dom.js";
import { postFeed } from "../posts.js";

/**
 * @typedef {import("../app.js").Ctx} Ctx
 * @typedef {import("../posts.js").Post} Post
 */

/** @param {HTMLElement} main @param {Ctx} ctx */
export function homeView(main, ctx) {
  const { api, client, me } = ctx;
  const feed = postFeed({
    api,
    label: "Home timeline",
    load: (cursor) => api.home({ cursor: cursor ?? undefined, limit: 20 }),
    empty: ["Your timeline is quiet", "Post something, or find people to follow with the search above."],
  });
  const compose = composer(ctx, (post) => feed.prepend([post]));
  /** @type {Set<string>} */
  const pending = new Set();
  const banner = h("button", { type: "button", class: "banner", hidden: true });

  function showBanner() {
    banner.hidden = pending.size === 0;
    banner.textContent = `New posts (${pending.size})`;
  }

  banner.addEventListener("click", async () => {
    const ids = [...pending];
    pending.clear();
    showBanner();
    const posts = (await Promise.all(ids.map((id) => api.post(id).catch(() => null))))
      .filter((p) => p !== null);
    posts.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
    feed.prepend(posts);
    window.scrollTo({ top: 0, behavior: "smooth" });
    const first = feed.root.querySelector("article");
    if (first instanceof HTMLElement) {
      first.tabIndex = -1;
      first.focus({ preventScroll: true });
    }
  });

  const offFeed = client.on("feed", (/** @type {any} */ frame) => {
    if (frame.ch !== `user:${me.id}`) return;
    const id = frame.data?.post?.id;
    if (!id) return;
    if (frame.kind === "post.created") {
      if (feed.has(id) || pending.has(id)) return;
      if (frame.data.post.author?.id === me.id) {
        // Mine (another tab, or a video that just became good enough): show it at once.
        api.post(id).then((p) => feed.prepend([p])).catch(() => {});
        return;
      }
      pending.add(id);
      showBanner();
    } else if (frame.kind === "post.deleted") {
      pending.delete(id);
      showBanner();
      feed.remove(id);
    }
  });

  main.append(
    h("h1", { class: "page-title", tabindex: -1 }, "Home"),
    compose.form,
    h("div", { class: "banner-slot" }, banner),
    feed.root,
  );
  return () => {
    offFeed();
    compose.destroy();
    feed.destroy();
  };
}
