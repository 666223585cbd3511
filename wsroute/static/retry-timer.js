// @ts-check
/**
 * A retry timer: the bookkeeping of "try again later", without the policy. The caller's
 * `timerCalc(tries)` decides each delay (exponential backoff, jitter, a cap); the timer counts
 * the tries and owns the one pending timeout, so a retry is never scheduled twice and a reset
 * after a success cannot leave a stale retry behind.
 *
 *   const retry = new RetryTimer(connect, (tries) => Math.min(10_000, 250 * 2 ** tries));
 *   socket.onclose = () => retry.scheduleTimeout();
 *   socket.onopen = () => retry.reset();
 */

/**
 * Timer functions, for fake clocks in tests; the global ones by default.
 * @typedef {object} Clock
 * @property {(callback: () => void, ms: number) => unknown} [setTimeout]
 * @property {(id: any) => void} [clearTimeout]
 */

// Looked up at each call, not captured at import: a test may replace the globals later.
/** @type {(callback: () => void, ms: number) => unknown} */
const globalSetTimeout = (callback, ms) => setTimeout(callback, ms);
/** @type {(id: any) => void} */
const globalClearTimeout = (id) => clearTimeout(id);

export class RetryTimer {
  /**
   * @param {() => void} callback called when a scheduled timeout expires
   * @param {(tries: number) => number} timerCalc the delay, in ms, of the next timeout, given
   *   how many were scheduled since the last reset (0 for the first)
   * @param {Clock} [clock]
   */
  constructor(callback, timerCalc, clock = {}) {
    this._callback = callback;
    this._timerCalc = timerCalc;
    this._setTimeout = clock.setTimeout ?? globalSetTimeout;
    this._clearTimeout = clock.clearTimeout ?? globalClearTimeout;
    this._tries = 0;
    this._pending = false;
    /** @type {unknown} */
    this._handle = null;
  }

  /** Timeouts scheduled since the last reset: the number of retries so far. */
  get tries() {
    return this._tries;
  }

  /** Whether a timeout is scheduled and has not expired or been cancelled. */
  get pending() {
    return this._pending;
  }

  /** Replace any pending timeout by one of `timerCalc(tries)` ms, and count one more try. */
  scheduleTimeout() {
    this.cancel();
    const delay = this._timerCalc(this._tries);
    this._tries += 1;
    this._pending = true;
    this._handle = this._setTimeout(() => {
      this._pending = false;
      this._handle = null;
      this._callback();
    }, delay);
  }

  /** Drop the pending timeout, if any; the count of tries stays. */
  cancel() {
    if (!this._pending) return;
    const handle = this._handle;
    this._pending = false;
    this._handle = null;
    this._clearTimeout(handle);
  }

  /** Start over: no pending timeout, and the next one is the first try again. */
  reset() {
    this._tries = 0;
    this.cancel();
  }
}
