/**
 * Resumable uploads over tus 1.0 (docs/media.md) with tus-js-client. Every request carries
 * `Authorization: Bearer <token()>`, fetched per request so a long upload outlives its access
 * token. The upload's URL is remembered under the file's fingerprint (localStorage in a browser),
 * so after a page reload the same file resumes where it stopped instead of starting over. The
 * server creates a draft post with the upload and names it in the `Amaro-Post-Id` header.
 *
 *     const task = upload(file, { endpoint: "/uploads/", token: () => api.accessToken(),
 *                                 onProgress: (sent, total) => bar.value = sent / total });
 *     task.start();
 *     const { uploadId, postId } = await task.promise;
 *     await api.createPost({ post_id: postId, body: "Sastipe!" });
 */

import { Upload } from "tus-js-client";

/**
 * @typedef {{uploadId: string, postId: string}} UploadResult
 * @typedef {{start(): void, abort(): Promise<void>, promise: Promise<UploadResult>}} UploadTask
 */

/**
 * Prepare the upload of `file` (a File or Blob in a browser; a Buffer or ReadStream in Node).
 * @param {any} file
 * @param {{endpoint: string, token: () => Promise<string>, metadata?: Record<string, string>,
 *          onProgress?: (sent: number, total: number) => void, onSuccess?: (result: UploadResult) => void,
 *          chunkSize?: number, retryDelays?: number[], urlStorage?: any}} options
 *   `endpoint`: the tus collection URL (e.g. "/uploads/" or "https://host/uploads/"); `chunkSize`:
 *   bytes per PATCH (default: the whole rest of the file); `urlStorage`: where resumable uploads are
 *   remembered (default: tus-js-client's, localStorage in a browser)
 * @returns {UploadTask}
 */
export function upload(file, { endpoint, token, metadata = {}, onProgress, onSuccess, chunkSize, retryDelays = [0, 1000, 3000, 5000, 10000],
  urlStorage }) {
  /** @type {(result: UploadResult) => void} */
  let resolve = () => {};
  /** @type {(error: Error) => void} */
  let reject = () => {};
  /** @type {Promise<UploadResult>} */
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  let postId = "";

  /** @type {Record<string, any>} */
  const options = {
    endpoint: absolute(endpoint),
    metadata,
    retryDelays,
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    /** @param {any} req */
    onBeforeRequest: async (req) => {
      req.setHeader("Authorization", `Bearer ${await token()}`);
    },
    /** @param {any} _req @param {any} res */
    onAfterResponse: (_req, res) => {
      const header = res.getHeader("Amaro-Post-Id");
      if (header) postId = header;
    },
    /** @param {number} sent @param {number} total */
    onProgress: (sent, total) => onProgress?.(sent, total),
    onSuccess: () => {
      const result = { uploadId: uploadIdOf(task.url ?? ""), postId };
      onSuccess?.(result);
      resolve(result);
    },
    /** @param {Error} error */
    onError: (error) => reject(error),
  };
  if (chunkSize !== undefined) options.chunkSize = chunkSize;
  if (urlStorage !== undefined) options.urlStorage = urlStorage;
  const task = new Upload(file, options);

  return {
    start() {
      task.findPreviousUploads().then((previous) => {
        if (previous.length) task.resumeFromPreviousUpload(previous[0]);
        task.start();
      }, (/** @type {Error} */ error) => reject(error));
    },
    abort() {
      return task.abort(false);
    },
    promise,
  };
}

/**
 * tus-js-client resolves a relative endpoint against the page; outside a browser there is none.
 * @param {string} endpoint
 */
function absolute(endpoint) {
  const base = globalThis.location?.href;
  return base ? new URL(endpoint, base).href : endpoint;
}

/**
 * The upload id: the last segment of its URL.
 * @param {string} url
 */
function uploadIdOf(url) {
  return url.replace(/\/+$/, "").split("/").pop() ?? "";
}
