/**
 * When to reconnect and where: exponential backoff with full jitter (SPEC §5.10), and the list of
 * endpoints with the ones that went down set aside until a health probe finds them answering.
 */

/**
 * Full jitter: a random wait in [0, min(cap, base × 2^attempt)], never less than the server's
 * hint when it gave one.
 * @param {number} attempt 0 for the first retry
 * @param {{baseMs?: number, capMs?: number, hintMs?: number | null, random?: () => number}} [options]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30_000, hintMs = null, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  const jittered = random() * ceiling;
  return hintMs === null ? jittered : Math.max(hintMs, jittered);
}

/**
 * The endpoints a client may use, in order of preference. One that failed (refused, no
 * handshake, went silent) is down: `pick` passes over it until `markUp` (after a successful
 * probe). When every endpoint is down they are all tried anyway, in turn.
 */
export class Endpoints {
  /** @param {string[]} urls */
  constructor(urls) {
    if (!urls.length) throw new Error("at least one endpoint is needed");
    /** @type {string[]} */
    this.urls = [...urls];
    /** @type {Set<number>} */
    this.down = new Set();
    /** Where the last pick started: rotation when all are down. */
    this.cursor = 0;
  }

  /**
   * The endpoint to try next: the first one up, starting at `from` (default: the preferred
   * order), else the next in turn.
   * @param {number} [from]
   * @returns {number} its index
   */
  pick(from = 0) {
    for (let i = 0; i < this.urls.length; i++) {
      const index = (from + i) % this.urls.length;
      if (!this.down.has(index)) return index;
    }
    this.cursor = (this.cursor + 1) % this.urls.length;
    return this.cursor;
  }

  /** @param {number} index */
  markDown(index) {
    this.down.add(index);
  }

  /** @param {number} index */
  markUp(index) {
    this.down.delete(index);
  }

  /** @param {number} index */
  isDown(index) {
    return this.down.has(index);
  }
}
