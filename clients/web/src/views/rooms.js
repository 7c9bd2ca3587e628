// The rooms list: each room with its last message and unread count, refreshed live.

import { avatar, emptyState, errorText, h, nameOf, replace, timeEl, uid } from "../dom.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const LIVE_ROOMS = 30;

/** A room's name as people see it: a direct room is named after the other person. @param {any} room */
export function roomTitle(room) {
  if (room.kind === "direct") return nameOf(room.peer) || room.title || "Direct messages";
  return room.title || "Untitled group";
}

/** @param {HTMLElement} main @param {Ctx} ctx */
export function roomsView(main, ctx) {
  const { api, client, me } = ctx;
  const list = h("ul", { class: "rooms", "aria-label": "Your rooms" });
  const status = h("div", { class: "feed-status", role: "status" }, "Loading…");
  let alive = true;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;

  async function load() {
    try {
      const page = await api.rooms();
      if (!alive) return;
      replace(list, page.items.map((/** @type {any} */ room) => roomRow(room, me.id)));
      for (const room of page.items.slice(0, LIVE_ROOMS)) watch(room.id);
      replace(status, page.items.length ? "" :
        emptyState("No conversations yet", "Open someone's profile and press Message to start one."));
    } catch (err) {
      if (alive) status.textContent = errorText(err);
    }
  }

  // New messages change unread counts and order; feed frames tell of rooms added or changed.
  const refreshSoon = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 300);
  };
  const offFeed = client.on("feed", (/** @type {any} */ f) => {
    if (f.ch === `user:${me.id}` && String(f.kind).startsWith("room.")) refreshSoon();
  });
  // New messages in the rooms on screen move their unread counts at once.
  /** @type {Set<string>} */
  const watched = new Set();
  /** @param {string} roomId */
  function watch(roomId) {
    const ch = `room:${roomId}`;
    if (watched.has(ch)) return;
    watched.add(ch);
    client.subscribe(ch).catch(() => watched.delete(ch));
  }
  const offEvents = client.on("event", (/** @type {any} */ f) => {
    if (f.t === "chat.msg" && watched.has(f.ch)) refreshSoon();
  });
  const poll = setInterval(load, 30_000);

  main.append(h("h1", { class: "page-title", tabindex: -1 }, "Rooms"), newGroup(ctx), list, status);
  void load();
  return () => {
    alive = false;
    offFeed();
    offEvents();
    for (const ch of watched) client.unsubscribe(ch).catch(() => {});
    clearTimeout(timer);
    clearInterval(poll);
  };
}

/**
 * One row: the link's name is the room's title; unread count and last message describe it.
 * @param {any} room
 * @param {string} myId
 */
function roomRow(room, myId) {
  const title = roomTitle(room);
  const detailId = uid("room-detail");
  const unreadId = uid("room-unread");
  const unread = Number(room.unread) || 0;
  const last = room.last_message;
  const lastText = last ? `${last.sender === myId ? "You: " : ""}${last.body}` : "No messages yet";
  return h("li", { class: `room-row${unread ? " has-unread" : ""}` },
    avatar(room.kind === "direct" && room.peer ? room.peer : { id: room.id, display_name: title }),
    h("div", { class: "room-text" },
      h("a", { class: "room-link", href: `#/rooms/${room.id}`, "aria-label": title, "aria-describedby": unread > 0 ? `${unreadId} ${detailId}` : detailId },
        h("span", { class: "room-title" }, title),
        unread > 0 ? h("span", { class: "unread", id: unreadId, "aria-label": `${unread} unread` }, unread > 99 ? "99+" : String(unread))
          : null),
      h("p", { class: "room-last", id: detailId },
        h("span", { class: "room-last-text" }, lastText),
        last?.ts ? h("span", { class: "room-last-time" }, "\u00a0· ", timeEl(last.ts)) : null)));
}

/**
 * "New group": a title and the usernames of the first members.
 * @param {Ctx} ctx
 */
function newGroup(ctx) {
  const { api } = ctx;
  const titleId = uid("group-title");
  const membersId = uid("group-members");
  const title = h("input", { id: titleId, class: "input", maxlength: 100, required: true, autocomplete: "off" });
  const members = h("input", { id: membersId, class: "input", autocomplete: "off", autocapitalize: "none",
    spellcheck: "false", placeholder: "ana, boris" });
  const error = h("p", { class: "form-error", role: "alert" });
  const create = h("button", { type: "submit", class: "button primary" }, "Create group");
  const form = h("form", { class: "group-form" },
    h("div", { class: "field" }, h("label", { for: titleId, class: "label" }, "Group name"), title),
    h("div", { class: "field" }, h("label", { for: membersId, class: "label" }, "Members (usernames, comma-separated)"),
      members),
    error, create);
  const details = h("details", { class: "card new-group" }, h("summary", { class: "new-group-summary" }, "New group"), form);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const names = [...new Set(members.value.split(",").map((n) => n.trim().replace(/^@/, "").toLowerCase()).filter(Boolean))];
    if (!title.value.trim()) {
      error.textContent = "Give the group a name.";
      title.focus();
      return;
    }
    create.disabled = true;
    try {
      const ids = [];
      for (const name of names) {
        try {
          ids.push((await api.userByName(name)).id);
        } catch {
          throw new Error(`Nobody is called @${name}.`);
        }
      }
      const room = await api.createRoom({ kind: "group", members: ids, title: title.value.trim() });
      location.hash = `#/rooms/${room.id}`;
    } catch (err) {
      error.textContent = errorText(err);
      create.disabled = false;
    }
  });
  return details;
}
