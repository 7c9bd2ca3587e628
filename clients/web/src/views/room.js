// A chat room: history (scroll up for older), live messages, presence, typing, read receipts and
// reactions, all over the one socket.

import { avatar, emptyState, errorText, h, nameOf, replace, timeEl, uid } from "../dom.js";
import { roomTitle } from "./rooms.js";

/** @typedef {import("../app.js").Ctx} Ctx */
/**
 * @typedef {{mid: string, offset: number, sender: string, body: string, ts: number}} Message
 * @typedef {{message: Message, li: HTMLLIElement, react: HTMLButtonElement, count: HTMLElement,
 *   mine: boolean, total: number}} Shown
 */

const EMOJI = "👍";
const TYPING_REFRESH_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOWN_MS = 5000;
const PAGE = 50;
const GROUP_MS = 5 * 60_000;

/**
 * @param {HTMLElement} main
 * @param {Ctx} ctx
 * @param {string} roomId
 */
export function roomView(main, ctx, roomId) {
  const { api, client, me } = ctx;
  const ch = `room:${roomId}`;
  /** @type {Map<string, string>} user id -> display name */
  const names = new Map([[me.id, nameOf(me)]]);
  /** @type {Map<string, Shown>} by mid */
  const shown = new Map();
  /** @type {{li: HTMLLIElement, body: string}[]} */
  const pending = [];
  const online = new Set();
  /** @type {Map<string, number>} user -> when their typing indicator expires */
  const typers = new Map();
  let seenOffset = 0;
  let readSent = 0;
  let more = false;
  let loadingOlder = false;
  let alive = true;
  /** @type {(() => void)[]} */
  const cleanups = [];

  const title = h("h1", { class: "page-title room-title", tabindex: -1 }, "Room");
  const onlineList = h("ul", { class: "online-list" });
  const onlineRegion = h("section", { class: "online", "aria-label": "Online" },
    h("h2", { class: "visually-hidden" }, "Online"), onlineList);
  const older = h("button", { type: "button", class: "button ghost older", hidden: true }, "Load older messages");
  const messages = h("ol", { class: "messages" });
  const noMessages = h("div", { class: "no-messages", hidden: true },
    emptyState("No messages yet", "Say hello: your first message starts the conversation."));
  const log = h("div", { class: "log", role: "log", "aria-label": "Messages", tabindex: 0 }, older, noMessages, messages);
  const typing = h("div", { class: "typing", role: "status", "aria-label": "Typing" });
  const inputId = uid("message");
  const input = h("textarea", { id: inputId, class: "input message-input", rows: 1, maxlength: 4000,
    placeholder: "Write a message", autocomplete: "off" });
  const send = h("button", { type: "submit", class: "button primary" }, "Send");
  const error = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "message-form" },
    h("label", { for: inputId, class: "visually-hidden" }, "Message"), input, send);

  // Keyboard users reach the message box without tabbing through every message's buttons.
  const jump = h("a", { href: `#${inputId}`, class: "skip-inline" }, "Jump to the message box");
  jump.addEventListener("click", (event) => {
    event.preventDefault();
    input.focus();
  });

  main.classList.add("main-room");
  main.append(
    h("div", { class: "room-head" },
      h("a", { href: "#/rooms", class: "back" }, h("span", { "aria-hidden": "true" }, "‹ "), "Back"),
      title, onlineRegion, jump),
    log, typing, error, form);

  // -- names, presence, typing ---------------------------------------------------------------------

  /** @param {string} id */
  function nameFor(id) {
    const known = names.get(id);
    if (known) return known;
    names.set(id, "Someone");
    api.request("GET", `/users/${id}`).then((/** @type {any} */ u) => {
      names.set(id, nameOf(u));
      for (const el of messages.querySelectorAll(`[data-sender="${CSS.escape(id)}"] .msg-author`)) {
        el.textContent = nameOf(u);
      }
      renderOnline();
      renderTyping();
    }).catch(() => {});
    return "Someone";
  }

  function renderOnline() {
    const people = [...online].filter((id) => id !== me.id).map(nameFor).sort();
    replace(onlineList, people.length
      ? people.map((name) => h("li", { class: "online-person" }, h("span", { class: "dot", "aria-hidden": "true" }), name))
      : h("li", { class: "online-none" }, "Nobody else is here right now"));
  }

  function renderTyping() {
    const now = Date.now();
    for (const [user, until] of typers) if (until <= now) typers.delete(user);
    const who = [...typers.keys()].map(nameFor);
    const text = who.length === 0 ? "" : who.length === 1 ? `${who[0]} is typing…`
      : who.length === 2 ? `${who[0]} and ${who[1]} are typing…` : "Several people are typing…";
    if (typing.textContent !== text) typing.textContent = text;
  }
  const typingTimer = setInterval(renderTyping, 1000);
  cleanups.push(() => clearInterval(typingTimer));

  // -- messages --------------------------------------------------------------------------------------

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function scrollToBottom() {
    log.scrollTop = log.scrollHeight;
  }

  /** @param {Message} message */
  function messageItem(message) {
    const mine = message.sender === me.id;
    const react = h("button", { type: "button", class: "react", "aria-label": `React ${EMOJI}`, "aria-pressed": "false" },
      h("span", { "aria-hidden": "true" }, EMOJI));
    const countId = uid("react-count");
    const count = h("span", { class: "react-count", id: countId, hidden: true });
    react.setAttribute("aria-describedby", countId);
    const li = h("li", { class: `msg${mine ? " mine" : ""}`, "data-mid": message.mid, "data-sender": message.sender },
      avatar({ id: message.sender, display_name: nameFor(message.sender) }, "s"),
      h("div", { class: "msg-bubble" },
        h("p", { class: "msg-meta" }, h("span", { class: "msg-author" }, nameFor(message.sender)), " ",
          message.ts ? timeEl(message.ts) : null),
        h("p", { class: "msg-body" }, message.body),
        h("div", { class: "msg-actions" }, react, count, h("span", { class: "seen" }))));
    /** @type {Shown} */
    const item = { message, li, react, count, mine: false, total: 0 };
    react.addEventListener("click", () => toggleReaction(item));
    return item;
  }

  /** @param {Shown} item */
  function renderCount(item) {
    item.count.hidden = item.total <= 0;
    item.count.textContent = item.total > 0 ? `${item.total}` : "";
    item.count.setAttribute("aria-label", `${item.total} ${EMOJI}`);
    item.react.setAttribute("aria-pressed", String(item.mine));
  }

  /** @param {Shown} item */
  async function toggleReaction(item) {
    const on = !item.mine;
    item.mine = on;
    item.total = Math.max(0, item.total + (on ? 1 : -1));
    renderCount(item);
    try {
      await client.react("message", item.message.mid, EMOJI, on);
    } catch (err) {
      item.mine = !on;
      item.total = Math.max(0, item.total + (on ? -1 : 1));
      renderCount(item);
      error.textContent = errorText(err);
    }
  }

  /** Insert a message in offset order; returns false when it was shown already. @param {any} frame */
  function addMessage(frame) {
    if (!frame.mid || shown.has(frame.mid)) return false;
    /** @type {Message} */
    const message = { mid: frame.mid, offset: Number(frame.offset) || 0, sender: frame.sender,
      body: frame.body, ts: Number(frame.ts) || 0 };
    if (message.sender === me.id) {
      const i = pending.findIndex((p) => p.body === message.body);
      if (i >= 0) pending.splice(i, 1)[0].li.remove();
    }
    const item = messageItem(message);
    shown.set(message.mid, item);
    let before = null;
    for (const other of messages.children) {
      const mid = other.getAttribute("data-mid");
      const o = mid ? shown.get(mid) : undefined;
      if (o && o.message.offset > message.offset) {
        before = other;
        break;
      }
      if (!o) { // pending items stay last
        before = other;
        break;
      }
    }
    messages.insertBefore(item.li, before);
    noMessages.hidden = true;
    return true;
  }

  /** Consecutive messages of one sender within a few minutes read as one group. */
  function regroup() {
    /** @type {Shown | undefined} */
    let previous;
    for (const li of messages.children) {
      const mid = li.getAttribute("data-mid");
      const item = mid ? shown.get(mid) : undefined;
      const follows = Boolean(item && previous && previous.message.sender === item.message.sender &&
        item.message.ts - previous.message.ts < GROUP_MS);
      li.classList.toggle("cont", follows);
      previous = item;
    }
  }

  function renderSeen() {
    regroup();
    let last = null;
    for (const item of shown.values()) {
      if (item.message.sender === me.id && (!last || item.message.offset > last.message.offset)) last = item;
    }
    for (const el of messages.querySelectorAll(".seen")) el.textContent = "";
    if (last && seenOffset >= last.message.offset) {
      const seen = last.li.querySelector(".seen");
      if (seen) seen.textContent = "Seen";
    }
  }

  function topOffset() {
    let top = 0;
    for (const item of shown.values()) top = Math.max(top, item.message.offset);
    return top;
  }

  /** Tell the others what I have read: the newest message, when the log shows it to me. */
  function markRead() {
    if (!alive || document.visibilityState !== "visible" || !nearBottom()) return;
    const top = topOffset();
    if (top > readSent) {
      readSent = top;
      try {
        client.receipt(roomId, top, "read");
      } catch { /* sent again with the next message */ readSent = 0; }
    }
  }

  /** History is not news: the log is busy (not announced) while a page goes in. @param {any} page */
  function addPage(page) {
    log.setAttribute("aria-busy", "true");
    for (const m of page.messages ?? []) addMessage(m);
    queueMicrotask(() => log.setAttribute("aria-busy", "false"));
    more = Boolean(page.more);
    older.hidden = !more;
    renderSeen();
  }

  async function loadOlder() {
    if (loadingOlder || !more) return;
    loadingOlder = true;
    let oldest = Infinity;
    for (const item of shown.values()) oldest = Math.min(oldest, item.message.offset);
    const height = log.scrollHeight;
    const top = log.scrollTop;
    try {
      addPage(await client.chatHistory(roomId, { before: oldest === Infinity ? -1 : oldest, limit: PAGE }));
      log.scrollTop = top + (log.scrollHeight - height);
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      loadingOlder = false;
    }
  }

  async function loadNewest() {
    const stick = nearBottom();
    addPage(await client.chatHistory(roomId, { before: -1, limit: PAGE }));
    noMessages.hidden = shown.size > 0 || pending.length > 0;
    if (stick) scrollToBottom();
    markRead();
  }

  older.addEventListener("click", loadOlder);
  log.addEventListener("scroll", () => {
    if (log.scrollTop < 60) void loadOlder();
    markRead();
  }, { passive: true });
  const onVisible = () => markRead();
  document.addEventListener("visibilitychange", onVisible);
  cleanups.push(() => document.removeEventListener("visibilitychange", onVisible));

  // -- live frames -------------------------------------------------------------------------------------

  cleanups.push(client.on("frame", (/** @type {any} */ f) => {
    if (f.ch !== ch) return;
    switch (f.t) {
      case "chat.msg": {
        const stick = nearBottom() || f.sender === me.id;
        if (addMessage(f)) {
          typers.delete(f.sender);
          renderTyping();
          renderSeen();
          if (stick) scrollToBottom();
          markRead();
        }
        break;
      }
      case "typing.ev":
        if (f.user === me.id) break;
        if (f.active === false) typers.delete(f.user);
        else typers.set(f.user, Date.now() + TYPING_SHOWN_MS);
        renderTyping();
        break;
      case "presence.snap":
        online.clear();
        for (const u of f.users ?? []) online.add(u);
        renderOnline();
        break;
      case "presence.join":
        online.add(f.user);
        renderOnline();
        break;
      case "presence.leave":
        online.delete(f.user);
        typers.delete(f.user);
        renderOnline();
        renderTyping();
        break;
      case "react.counts": {
        const item = f.target_kind === "message" ? shown.get(f.target_id) : undefined;
        if (item) {
          item.total = Number(f.counts?.[EMOJI] ?? 0);
          renderCount(item);
        }
        break;
      }
      case "chat.receipt.ev":
        if (f.kind === "read" && f.user !== me.id && f.offset > seenOffset) {
          seenOffset = f.offset;
          renderSeen();
        }
        break;
      default:
        break;
    }
  }));
  // Removed from the room (or it was closed) elsewhere: the server ended the subscription.
  cleanups.push(client.on("feed", (/** @type {any} */ f) => {
    if (f.ch === `user:${me.id}` && f.kind === "room.removed" && f.data?.room === roomId) {
      input.disabled = send.disabled = true;
      error.textContent = f.data.reason === "left" ? "You left this room." : "You are no longer a member of this room.";
    }
  }));

  // Resumed with a hole the server could not fill: read the newest page again.
  cleanups.push(client.on("stale", (/** @type {string} */ stale) => {
    if (stale === ch) void loadNewest().catch(() => {});
  }));
  cleanups.push(client.on("state", (/** @type {string} */ state) => {
    if (state === "open") void client.presence(ch).then(applySnap).catch(() => {});
  }));

  /** @param {any} snap */
  function applySnap(snap) {
    if (!snap) return;
    online.clear();
    for (const u of snap.users ?? []) online.add(u);
    renderOnline();
  }

  // -- typing and sending ------------------------------------------------------------------------------

  let typingSentAt = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let idleTimer;
  function stopTyping() {
    clearTimeout(idleTimer);
    if (typingSentAt) {
      typingSentAt = 0;
      try { client.typing(ch, false); } catch { /* socket down: the others' indicator expires */ }
    }
  }
  input.addEventListener("input", () => {
    if (!input.value.trim()) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (now - typingSentAt >= TYPING_REFRESH_MS) {
      typingSentAt = now;
      try { client.typing(ch, true); } catch { typingSentAt = 0; }
    }
    clearTimeout(idleTimer);
    idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  input.addEventListener("blur", stopTyping);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  cleanups.push(stopTyping);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = input.value.trim();
    if (!body) return;
    error.textContent = "";
    input.value = "";
    stopTyping();
    const li = h("li", { class: "msg mine pending" },
      avatar(me, "s"),
      h("div", { class: "msg-bubble" },
        h("p", { class: "msg-meta" }, h("span", { class: "msg-author" }, nameOf(me)), " ", h("span", {}, "Sending…")),
        h("p", { class: "msg-body" }, body)));
    const entry = { li, body };
    pending.push(entry);
    noMessages.hidden = true;
    messages.append(li);
    scrollToBottom();
    try {
      const ack = await client.chatSend(roomId, body);
      const at = pending.indexOf(entry);
      if (at >= 0) {
        pending.splice(at, 1);
        li.remove();
        addMessage({ mid: ack.mid, offset: ack.offset, ts: ack.ts, sender: me.id, body });
        renderSeen();
        scrollToBottom();
      }
    } catch (err) {
      const at = pending.indexOf(entry);
      if (at >= 0) pending.splice(at, 1);
      li.remove();
      if (!input.value) input.value = body;
      error.textContent = `Not sent: ${errorText(err)}`;
    }
  });

  // -- start -------------------------------------------------------------------------------------------

  (async () => {
    try {
      const room = await api.room(roomId);
      if (!alive) return;
      for (const m of room.members ?? []) names.set(m.id, nameOf(m));
      if (room.kind === "direct" && !room.peer) room.peer = (room.members ?? []).find((/** @type {any} */ m) => m.id !== me.id);
      title.textContent = roomTitle(room);
      document.title = `${roomTitle(room)} · Amaro Than`;
      renderOnline();
      const sub = await client.subscribe(ch, { presence: true });
      const leave = () => { sub.unsubscribe().catch(() => { /* the socket is gone: nothing to leave */ }); };
      if (!alive) {
        leave();
        return;
      }
      cleanups.push(leave);
      await loadNewest();
      applySnap(await client.presence(ch).catch(() => null));
    } catch (err) {
      if (alive) error.textContent = errorText(err);
    }
  })();

  return () => {
    alive = false;
    main.classList.remove("main-room");
    for (const fn of cleanups) {
      try { fn(); } catch { /* best effort */ }
    }
  };
}
