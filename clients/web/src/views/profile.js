// A profile: who they are, follow / unfollow / requested, "Message", and their posts.

import { avatar, emptyState, errorText, h, nameOf, uid } from "../dom.js";
import { postFeed } from "../posts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

/**
 * @param {HTMLElement} main
 * @param {Ctx} ctx
 * @param {string} username
 */
export function profileView(main, ctx, username) {
  const { api, me } = ctx;
  let alive = true;
  /** @type {(() => void) | null} */
  let destroyFeed = null;
  const title = h("h1", { class: "page-title", tabindex: -1 }, "Profile");
  main.append(title, h("p", { class: "feed-status", role: "status" }, "Loading…"));

  (async () => {
    /** @type {any} */
    let user;
    try {
      user = await api.userByName(username);
    } catch (err) {
      if (!alive) return;
      main.replaceChildren(h("h1", { class: "page-title", tabindex: -1 }, "Profile"),
        emptyState("No such person", `We could not find @${username}. ${errorText(err)}`));
      return;
    }
    if (!alive) return;
    const mine = user.id === me.id;
    const head = h("section", { class: "card profile" },
      h("div", { class: "profile-top" },
        avatar(user, "l"),
        h("div", { class: "profile-names" },
          h("h1", { class: "page-title profile-name", tabindex: -1 }, nameOf(user)),
          h("p", { class: "handle" }, `@${user.username}`, user.private ? " · private account" : ""))),
      user.bio ? h("p", { class: "profile-bio" }, user.bio) : null,
      h("p", { class: "profile-counts" },
        h("span", {}, h("strong", {}, String(user.posts_count ?? 0)), " posts"),
        h("span", {}, h("strong", { class: "followers-count" }, String(user.followers_count ?? 0)), " followers"),
        h("span", {}, h("strong", {}, String(user.following_count ?? 0)), " following")));
    const error = h("p", { class: "form-error", role: "alert" });
    if (!mine) head.append(actions(ctx, user, error), error);

    const feed = postFeed({
      api,
      label: `Posts by ${nameOf(user)}`,
      load: (cursor) => api.userPosts(user.id, { cursor: cursor ?? undefined, limit: 20 }),
      empty: mine ? ["No posts yet", "Your posts will show here."] : ["No posts to show",
        user.private ? "This account is private: follow it to see its posts." : "Nothing posted yet."],
    });
    destroyFeed = () => feed.destroy();
    if (mine) head.append(editProfile(ctx, user));
    main.replaceChildren(head, mine ? followRequests(ctx) : "", h("h2", { class: "section-title" }, "Posts"), feed.root);
    const heading = head.querySelector("h1");
    if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
  })();

  return () => {
    alive = false;
    destroyFeed?.();
  };
}

/**
 * Follow (Following / Requested) and Message.
 * @param {Ctx} ctx
 * @param {any} user
 * @param {HTMLElement} error
 */
function actions(ctx, user, error) {
  const { api } = ctx;
  /** @type {"none" | "following" | "requested"} */
  let state = "none";
  const follow = h("button", { type: "button", class: "button primary" }, "Follow");
  const message = h("button", { type: "button", class: "button ghost" }, "Message");
  const counter = () => /** @type {HTMLElement | null} */ (document.querySelector(".followers-count"));

  function render() {
    follow.textContent = state === "following" ? "Following" : state === "requested" ? "Requested" : "Follow";
    follow.className = state === "none" ? "button primary" : "button ghost";
  }

  api.relationship(user.id).then((/** @type {any} */ rel) => {
    state = rel.following ? "following" : rel.requested ? "requested" : "none";
    render();
  }).catch(() => {});

  follow.addEventListener("click", async () => {
    error.textContent = "";
    follow.disabled = true;
    try {
      const count = counter();
      if (state === "none") {
        const answer = await api.follow(user.id);
        state = answer.state === "requested" ? "requested" : "following";
        if (state === "following" && count) count.textContent = String(Number(count.textContent) + 1);
      } else {
        const was = state;
        await api.unfollow(user.id);
        state = "none";
        if (was === "following" && count) count.textContent = String(Math.max(0, Number(count.textContent) - 1));
      }
      render();
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      follow.disabled = false;
    }
  });

  message.addEventListener("click", async () => {
    error.textContent = "";
    message.disabled = true;
    try {
      const room = await api.directRoom(user.id);
      location.hash = `#/rooms/${room.id}`;
    } catch (err) {
      error.textContent = errorText(err);
      message.disabled = false;
    }
  });

  return h("div", { class: "profile-actions" }, follow, message);
}

/**
 * On one's own profile: people asking to follow (a private account), each with Accept and Decline.
 * @param {Ctx} ctx
 */
function followRequests(ctx) {
  const { api } = ctx;
  const list = h("ul", { class: "requests" });
  const section = h("section", { class: "card requests-card", "aria-labelledby": "requests-title", hidden: true },
    h("h2", { id: "requests-title", class: "section-title" }, "Follow requests"), list);
  api.followRequests().then((/** @type {any} */ page) => {
    for (const request of page.items ?? []) {
      const person = request.user ?? request;
      const name = nameOf(person);
      const accept = h("button", { type: "button", class: "button primary small", "aria-label": `Accept ${name}` }, "Accept");
      const decline = h("button", { type: "button", class: "button ghost small", "aria-label": `Decline ${name}` }, "Decline");
      const row = h("li", { class: "request" }, avatar(person, "s"),
        h("a", { href: `#/u/${encodeURIComponent(person.username)}`, class: "request-name" }, name), accept, decline);
      /** @param {() => Promise<unknown>} act */
      const answer = (act) => async () => {
        accept.disabled = decline.disabled = true;
        try {
          await act();
          row.remove();
          section.hidden = list.children.length === 0;
        } catch {
          accept.disabled = decline.disabled = false;
        }
      };
      accept.addEventListener("click", answer(() => api.acceptRequest(person.id)));
      decline.addEventListener("click", answer(() => api.declineRequest(person.id)));
      list.append(row);
    }
    section.hidden = list.children.length === 0;
  }).catch(() => {});
  return section;
}

/**
 * On one's own profile: display name, bio and whether the account is private.
 * @param {Ctx} ctx
 * @param {any} user
 */
function editProfile(ctx, user) {
  const ids = { name: uid("edit-name"), bio: uid("edit-bio"), priv: uid("edit-private") };
  const name = h("input", { id: ids.name, class: "input", maxlength: 64, value: user.display_name ?? "" });
  const bio = h("textarea", { id: ids.bio, class: "input", rows: 3, maxlength: 500 });
  bio.value = user.bio ?? "";
  const priv = h("input", { id: ids.priv, type: "checkbox", class: "checkbox" });
  priv.checked = Boolean(user.private);
  const status = h("p", { class: "form-status", role: "status" });
  const error = h("p", { class: "form-error", role: "alert" });
  const save = h("button", { type: "submit", class: "button primary" }, "Save profile");
  const form = h("form", { class: "edit-form" },
    h("div", { class: "field" }, h("label", { for: ids.name, class: "label" }, "Display name"), name),
    h("div", { class: "field" }, h("label", { for: ids.bio, class: "label" }, "Bio"), bio),
    h("div", { class: "check-field" }, priv, h("label", { for: ids.priv }, "Private account: I approve who follows me")),
    error, status, save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = status.textContent = "";
    save.disabled = true;
    try {
      await ctx.api.updateMe({ display_name: name.value.trim(), bio: bio.value.trim(), private: priv.checked });
      status.textContent = "Saved.";
      window.dispatchEvent(new HashChangeEvent("hashchange")); // show the profile as saved
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      save.disabled = false;
    }
  });
  return h("details", { class: "edit-profile" }, h("summary", { class: "new-group-summary" }, "Edit profile"), form);
}
