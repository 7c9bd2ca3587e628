// Video playback: hls.js (light build) is loaded only when a video first becomes visible, and a
// player swaps to the upgraded playlist in place, keeping its position.

/** @typedef {import("hls.js").default} HlsInstance */

/** @type {Promise<typeof import("hls.js").default> | null} */
let hlsModule = null;

function loadHls() {
  hlsModule ??= import("hls.js/dist/hls.light.mjs").then((m) => m.default);
  return hlsModule;
}

/** @type {WeakMap<HTMLVideoElement, {hls: HlsInstance | null, url: string}>} */
const players = new WeakMap();

/** @type {IntersectionObserver | null} */
let observer = null;

/** Muted autoplay while at least half of a video is on screen, pause when it leaves. */
function visibility() {
  observer ??= new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const video = /** @type {HTMLVideoElement} */ (entry.target);
      const url = video.dataset.src;
      if (entry.isIntersecting && url && !players.has(video)) {
        attach(video, url, 0).catch(() => { players.delete(video); });
      }
      if (entry.intersectionRatio >= 0.5) {
        if (video.paused && !video.dataset.userPaused) video.play().catch(() => {});
      } else if (!video.paused) {
        video.pause();
      }
    }
  }, { threshold: [0, 0.5] });
  return observer;
}

/**
 * @param {HTMLVideoElement} video
 * @param {string} url
 * @param {number} position seconds
 */
async function attach(video, url, position) {
  const previous = players.get(video);
  players.set(video, { hls: previous?.hls ?? null, url });
  if (previous?.hls) previous.hls.destroy();
  const Hls = await loadHls();
  if (players.get(video)?.url !== url) return; // a newer playlist arrived meanwhile
  if (Hls.isSupported()) {
    const hls = new Hls({ startPosition: position > 0 ? position : -1, capLevelToPlayerSize: true });
    players.set(video, { hls, url });
    let recoveries = 0;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal || recoveries >= 3) return;
      recoveries += 1;
      // A growing playlist can briefly lag its segments; a decoder hiccup can be recovered.
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else hls.startLoad();
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    if (position > 0) video.addEventListener("loadedmetadata", () => { video.currentTime = position; }, { once: true });
  }
}

/**
 * A muted, inline video for an HLS playlist; it starts loading when it scrolls into view.
 * @param {string} url
 * @param {string | null} poster
 * @param {string} label
 */
export function videoPlayer(url, poster, label) {
  const video = document.createElement("video");
  video.className = "video";
  video.controls = true;
  video.muted = true;
  video.playsInline = true;
  video.loop = true;
  video.preload = "none";
  video.setAttribute("aria-label", label);
  if (poster) video.poster = poster;
  video.dataset.src = url;
  // A pause by the person sticks until they press play again.
  video.addEventListener("pause", () => {
    if (document.visibilityState === "visible" && video.isConnected && isOnScreen(video)) video.dataset.userPaused = "1";
  });
  video.addEventListener("play", () => { delete video.dataset.userPaused; });
  visibility().observe(video);
  return video;
}

/** @param {Element} el */
function isOnScreen(el) {
  const r = el.getBoundingClientRect();
  return r.bottom > 0 && r.top < window.innerHeight;
}

/**
 * Switch a player to a better playlist without a reload: same element, same position, same
 * play state.
 * @param {HTMLVideoElement} video
 * @param {string} url
 */
export function upgradePlayer(video, url) {
  video.dataset.src = url;
  const current = players.get(video);
  if (!current || current.url === url) return;
  const wasPlaying = !video.paused;
  const position = video.currentTime;
  attach(video, url, position).then(() => {
    if (wasPlaying) video.play().catch(() => {});
  }, () => { players.delete(video); });
}

/** Stop and release every player under `root` (a view being left). @param {ParentNode} root */
export function releasePlayers(root) {
  for (const video of root.querySelectorAll("video")) {
    observer?.unobserve(video);
    players.get(video)?.hls?.destroy();
    players.delete(video);
  }
}
