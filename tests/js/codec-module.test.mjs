// The codec is its own module: pure (no sockets, timers or events), and re-exported whole by
// the client, which is what browsers import. Its rules are tested in codec.test.mjs.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

import * as codec from "../../wsroute/static/multiplex-codec.js";
import * as client from "../../wsroute/static/multiplex.js";

test("multiplex.js re-exports every export of the codec, and adds only the client", () => {
  for (const [name, value] of Object.entries(codec)) {
    assert.equal(client[name], value, name);
  }
  const added = Object.keys(client).filter((name) => !(name in codec));
  assert.deepEqual(added.sort(), [
    "DEFAULT_REQUEST_TIMEOUT",
    "MultiplexSocket",
    "MultiplexWebSocket",
    "NO_REPLY_CODE",
    "RequestError",
  ]);
});

test("the codec loads and works where there are no sockets, timers or events", () => {
  const url = new URL("../../wsroute/static/multiplex-codec.js", import.meta.url).href;
  const script = `
    for (const name of ["WebSocket", "EventTarget", "Event", "setTimeout", "clearTimeout",
                        "queueMicrotask", "MessageEvent", "CloseEvent", "location"]) {
      delete globalThis[name];
    }
    const codec = await import(${JSON.stringify(url)});
    const frame = codec.encodeUnsubscribe("/room", 4000, "a\\u00b7b");
    const binary = codec.parseServerFrame(codec.encodeBinary("/room", new Uint8Array([1, 2])));
    console.log(JSON.stringify([codec.parseClientFrame(frame), [...binary.data]]));
  `;
  const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
  });
  assert.deepEqual(JSON.parse(output), [
    { type: "unsubscribe", topic: "/room", code: 4000, reason: "a\u00b7b" },
    [1, 2],
  ]);
});
