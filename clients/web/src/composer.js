// The composer: text posts, and video posts uploaded with tus in the background. An upload
// belongs to the app, not to the view: leaving Home does not stop it, and coming back shows
// its progress again.

import { upload } from "../../js/src/index.js";
import { errorText, h, uid } from "./dom.js";

/**
 * @typedef {import("./posts.js").Post} Post
 * @typedef {import("../../js/src/index.js").Api} Api
 * @typedef {{api: Api, config: {uploads: string}}} ComposerContext
 * @typedef {{percent: number, name: string, state: "uploading"|"composing"|"done"|"failed", error: string}} UploadState
 */

/** @type {UploadState | null} */
let current = null;
/** @type {Set<() => void>} */
const watchers = new Set();

function notify() {
  for (const w of watchers) w();
}

/**
 * Upload a video and compose its post; resolves with the post (state "processing").
 * @param {ComposerContext} ctx
 * @param {File} file
 * @param {string} body
 * @returns {Promise<Post>}
 */
async function uploadVideo(ctx, file, body) {
  current = { percent: 0, name: file.name, state: "uploading", error: "" };
  notify();
  try {
    const task = upload(file, {
      endpoint: ctx.config.uploads,
      token: () => ctx.api.accessToken(),
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      onProgress: (sent, total) => {
        if (!current) return;
        current.percent = total ? Math.min(100, Math.floor((sent / total) * 100)) : 0;
        notify();
      },
    });
    task.start();
    const { uploadId, postId } = await task.promise;
    current.percent = 100;
    current.state = "composing";
    notify();
    /** @type {Record<string, string>} */
    const fields = { kind: "video" };
    if (postId) fields.post_id = postId;
    else fields.upload_id = uploadId;
    if (body) fields.body = body;
    const post = /** @type {Post} */ (await ctx.api.createPost(fields));
    current.state = "done";
    notify();
    const finished = current;
    setTimeout(() => {
      if (current === finished) {
        current = null;
        notify();
      }
    }, 8000);
    return post;
  } catch (err) {
    if (current) {
      current.state = "failed";
      current.error = errorText(err);
    }
    notify();
    throw err;
  }
}

/**
 * The composer form. `onPosted` receives each new post.
 * @param {ComposerContext} ctx
 * @param {(post: Post) => void} onPosted
 */
export function composer(ctx, onPosted) {
  const textId = uid("compose-text");
  const fileId = uid("compose-file");
  const text = h("textarea", { id: textId, name: "body", rows: 3, maxlength: 5000, class: "input compose-text",
    placeholder: "Share something with the people who follow you" });
  const file = h("input", { id: fileId, type: "file", accept: "video/*", class: "visually-hidden file-input" });
  const fileName = h("span", { class: "file-name" });
  const error = h("p", { class: "form-error", role: "alert" });
  const bar = h("div", { class: "progress-fill" });
  const progress = h("div", { class: "progress", role: "progressbar", "aria-label": "Upload progress",
    "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0, hidden: true }, bar);
  // The live region speaks when the upload changes state, not at every percent (the bar has those).
  const progressText = h("p", { class: "progress-text", "aria-live": "polite" });
  const percentText = h("span", { class: "progress-percent", "aria-hidden": "true" });
  const submit = h("button", { type: "submit", class: "button primary" }, "Post");

  const form = h("form", { class: "card composer", "aria-label": "New post" },
    h("label", { for: textId, class: "label" }, "What's happening?"),
    text,
    h("div", { class: "compose-row" },
      file,
      h("label", { for: fileId, class: "button ghost file-label" },
        h("span", { class: "icon-film", "aria-hidden": "true" }), "Add a video"),
      fileName, submit),
    progress, h("div", { class: "progress-row" }, progressText, percentText), error);

  file.addEventListener("change", () => {
    const picked = file.files?.[0];
    fileName.textContent = picked ? picked.name : "";
  });

  function render() {
    const up = current;
    const busy = up !== null && (up.state === "uploading" || up.state === "composing");
    progress.hidden = up === null || up.state === "done" || up.state === "failed";
    file.disabled = busy;
    if (!up) {
      progressText.textContent = "";
      percentText.textContent = "";
      return;
    }
    percentText.textContent = up.state === "uploading" ? `${up.percent}%` : "";
    progress.setAttribute("aria-valuenow", String(up.percent));
    progress.setAttribute("aria-valuetext", `${up.percent}%`);
    bar.style.width = `${up.percent}%`;
    if (up.state === "uploading") progressText.textContent = `Uploading ${up.name}…`;
    else if (up.state === "composing") progressText.textContent = "Upload complete. Creating your post…";
    else if (up.state === "done") progressText.textContent = "Uploaded. Your video is being processed.";
    else progressText.textContent = `Upload failed: ${up.error}`;
  }
  watchers.add(render);
  render();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = text.value.trim();
    const picked = file.files?.[0];
    if (!body && !picked) {
      error.textContent = "Write something or add a video first.";
      text.focus();
      return;
    }
    if (picked && current && (current.state === "uploading" || current.state === "composing")) {
      error.textContent = "Please wait until the current video has uploaded.";
      return;
    }
    submit.disabled = true;
    try {
      if (picked) {
        text.value = "";
        file.value = "";
        fileName.textContent = "";
        submit.disabled = false; // the upload runs in the background: keep posting
        onPosted(await uploadVideo(ctx, picked, body));
      } else {
        const post = /** @type {Post} */ (await ctx.api.createPost({ body }));
        text.value = "";
        onPosted(post);
      }
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      submit.disabled = false;
    }
  });

  return { form, destroy() { watchers.delete(render); } };
}
