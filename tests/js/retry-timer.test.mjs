// RetryTimer on a fake clock: how many tries, which delays, and never two pending timeouts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { RetryTimer } from "../../wsroute/static/retry-timer.js";

/** A fake clock that records every timeout; `fire()` runs the pending ones. */
function clock() {
  const pending = new Map();
  const cleared = [];
  let nextId = 1;
  return {
    pending,
    cleared,
    setTimeout(callback, ms) {
      const id = nextId++;
      pending.set(id, { callback, ms });
      return id;
    },
    clearTimeout(id) {
      cleared.push(id);
      pending.delete(id);
    },
    /** Run the timeouts pending now; returns their delays. */
    fire() {
      const due = [...pending.values()];
      pending.clear();
      for (const { callback } of due) callback();
      return due.map(({ ms }) => ms);
    },
  };
}

function timer({ timerCalc = (tries) => 100 * 2 ** tries } = {}) {
  const fake = clock();
  const calls = [];
  const retry = new RetryTimer(() => calls.push(retry.tries), timerCalc, fake);
  return { fake, calls, retry };
}

describe("RetryTimer", () => {
  test("each timeout's delay is timerCalc(tries so far), starting at 0", () => {
    const seen = [];
    const { fake, calls, retry } = timer({
      timerCalc: (tries) => {
        seen.push(tries);
        return Math.min(1000, 100 * 2 ** tries);
      },
    });
    const delays = [];
    for (let i = 0; i < 6; i++) {
      retry.scheduleTimeout();
      delays.push(...fake.fire());
    }
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
    assert.deepEqual(calls, [1, 2, 3, 4, 5, 6]); // tries counts the timeout being run
  });

  test("tries counts scheduled timeouts, pending tells whether one is waiting", () => {
    const { fake, retry } = timer();
    assert.equal(retry.tries, 0);
    assert.equal(retry.pending, false);
    retry.scheduleTimeout();
    assert.equal(retry.tries, 1); // counted when scheduled, before it runs
    assert.equal(retry.pending, true);
    fake.fire();
    assert.equal(retry.pending, false);
    assert.equal(retry.tries, 1);
  });

  test("scheduling again replaces the pending timeout: one callback, not two", () => {
    const { fake, calls, retry } = timer();
    retry.scheduleTimeout();
    retry.scheduleTimeout();
    assert.equal(fake.pending.size, 1);
    assert.deepEqual(fake.cleared, [1]);
    assert.deepEqual(fake.fire(), [200]);
    assert.deepEqual(calls, [2]);
  });

  test("cancel drops the pending timeout and keeps the count", () => {
    const { fake, calls, retry } = timer();
    retry.scheduleTimeout();
    retry.cancel();
    assert.equal(retry.pending, false);
    assert.equal(fake.pending.size, 0);
    assert.equal(retry.tries, 1);
    retry.cancel(); // nothing pending: no clearTimeout call
    assert.deepEqual(fake.cleared, [1]);
    retry.scheduleTimeout();
    assert.deepEqual(fake.fire(), [200]);
    assert.deepEqual(calls, [2]);
  });

  test("reset starts over: no pending timeout, and the next delay is the first one again", () => {
    const { fake, calls, retry } = timer();
    retry.scheduleTimeout();
    fake.fire();
    retry.scheduleTimeout();
    retry.reset();
    assert.equal(retry.tries, 0);
    assert.equal(retry.pending, false);
    assert.equal(fake.pending.size, 0);
    retry.scheduleTimeout();
    assert.deepEqual(fake.fire(), [100]);
    assert.deepEqual(calls, [1, 1]);
  });

  test("the callback may schedule the next try itself", () => {
    const fake = clock();
    const retry = new RetryTimer(() => {
      if (retry.tries < 3) retry.scheduleTimeout();
    }, (tries) => tries, fake);
    retry.scheduleTimeout();
    const delays = [];
    while (fake.pending.size > 0) delays.push(...fake.fire());
    assert.deepEqual(delays, [0, 1, 2]);
    assert.equal(retry.pending, false);
  });

  test("without a clock it uses the global timers", async () => {
    let done;
    const ran = new Promise((resolve) => (done = resolve));
    const retry = new RetryTimer(() => done(retry.tries), () => 0);
    retry.scheduleTimeout();
    assert.equal(await ran, 1);
    const never = new RetryTimer(() => assert.fail("cancelled"), () => 0);
    never.scheduleTimeout();
    never.cancel();
    await new Promise((resolve) => setTimeout(resolve, 5));
  });
});
