// The light build of hls.js has the same API as the full one (without subtitles, DRM and alt audio).
declare module "hls.js/dist/hls.light.mjs" {
  export { default } from "hls.js";
}
