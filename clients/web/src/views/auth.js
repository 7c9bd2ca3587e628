// Signed out: log in, or sign up with the same form.

import { errorText, h, uid } from "../dom.js";

/** @typedef {import("../../../js/src/index.js").Api} Api */

/**
 * @param {HTMLElement} main
 * @param {Api} api
 */
export function authView(main, api) {
  const ids = { user: uid("username"), pass: uid("password"), name: uid("display-name") };
  const username = h("input", { id: ids.user, name: "username", class: "input", autocomplete: "username",
    autocapitalize: "none", spellcheck: "false", required: true, minlength: 3, maxlength: 32 });
  const password = h("input", { id: ids.pass, name: "password", type: "password", class: "input",
    autocomplete: "current-password", required: true });
  const displayName = h("input", { id: ids.name, name: "display_name", class: "input", autocomplete: "nickname",
    maxlength: 64 });
  const alert = h("div", { class: "form-error", role: "alert" });
  const login = h("button", { type: "submit", class: "button primary", value: "login" }, "Log in");
  const signup = h("button", { type: "submit", class: "button ghost", value: "signup" }, "Sign up");

  const form = h("form", { class: "card auth-form", "aria-labelledby": "auth-heading", novalidate: true },
    h("h2", { id: "auth-heading", class: "auth-lead" }, "Dance, music, family, friends: all live."),
    field(ids.user, "Username", username, "3-32 letters, digits, _ or ."),
    field(ids.pass, "Password", password, "At least 10 characters to sign up"),
    field(ids.name, "Display name (optional)", displayName, "How people see you; only for signing up"),
    alert,
    h("div", { class: "auth-actions" }, login, signup));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submitter = /** @type {SubmitEvent} */ (event).submitter;
    const mode = submitter instanceof HTMLButtonElement ? submitter.value : "login";
    alert.textContent = "";
    login.disabled = signup.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      const creds = { username: username.value.trim().toLowerCase(), password: password.value };
      if (mode === "signup") {
        const display = displayName.value.trim();
        await api.signup(display ? { ...creds, display_name: display } : creds);
      } else {
        await api.login(creds);
      }
    } catch (err) {
      alert.textContent = errorText(err);
      login.disabled = signup.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });

  main.append(
    h("div", { class: "auth" },
      h("div", { class: "brand-hero" },
        h("span", { class: "logo logo-l", "aria-hidden": "true" }, "A"),
        h("h1", { class: "hero-title", tabindex: -1 }, "Amaro Than"),
        h("p", { class: "hero-sub" }, "Our place. Share videos, chat with family and friends, follow the people you love.")),
      form));
}

/**
 * @param {string} id
 * @param {string} label
 * @param {HTMLInputElement} input
 * @param {string} hint
 */
function field(id, label, input, hint) {
  const hintId = `${id}-hint`;
  input.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" },
    h("label", { for: id, class: "label" }, label), input, h("p", { id: hintId, class: "hint" }, hint));
}
