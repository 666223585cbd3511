// The MultiplexWebSocket state machine, driven by a fake WebSocket class and fake timers.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  MultiplexWebSocket,
  NO_REPLY_CODE,
  RequestError,
  SEP,
  SUBPROTOCOL,
  encodeBinary,
  encodeErr,
  encodeOk,
  encodeServerUnsubscribe,
  encodeText,
  parseClientFrame,
} from "../../wsroute/static/multiplex.js";

const S = SEP;
let hostCounter = 0;

/**
 * A fresh world per test: its own host (the socket registry is keyed by origin), a fake
 * WebSocket class recording every instance, fake timers and a fixed `random`.
 */
function world({ random = () => 0.5, ...extra } = {}) {
  const host = `ws://h${++hostCounter}.test`;
  const sockets = [];
  const timers = [];
  let nextTimer = 1;

  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.binaryType = "blob";
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(data) {
      assert.equal(this.readyState, 1, "send on a socket that is not open");
      this.sent.push(typeof data === "string" ? data : new Uint8Array(data));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }
    // ---- the server's side
    accept() {
      this.readyState = 1;
      this.onopen?.({ type: "open" });
    }
    deliver(data) {
      this.onmessage?.({ type: "message", data });
    }
    drop(code = 1006, reason = "", wasClean = false) {
      this.readyState = 3;
      this.onclose?.({ type: "close", code, reason, wasClean });
    }
    /** Client frames sent so far, parsed; clears the list. */
    take() {
      const frames = this.sent.map((frame) => parseClientFrame(frame));
      this.sent = [];
      return frames;
    }
  }

  const options = {
    WebSocket: FakeWebSocket,
    // The plain protocol unless a test asks for the extensions (their own tests are below).
    extensions: false,
    random,
    setTimeout(callback, ms) {
      const timer = { id: nextTimer++, callback, ms };
      timers.push(timer);
      return timer.id;
    },
    clearTimeout(id) {
      const index = timers.findIndex((timer) => timer.id === id);
      if (index >= 0) timers.splice(index, 1);
    },
    ...extra,
  };

  return {
    host,
    sockets,
    timers,
    options,
    open(path, more = {}) {
      return record(new MultiplexWebSocket(host + path, { ...options, ...more }));
    },
    /** Run the pending timers (only those pending now), or only those whose delay is `ms`. */
    tick(ms) {
      const due = timers.filter((timer) => ms === undefined || timer.ms === ms);
      for (const timer of due) timers.splice(timers.indexOf(timer), 1);
      for (const timer of due) timer.callback();
      return due.map((timer) => timer.ms);
    },
  };
}

/** Attach listeners that log every event as a compact string. */
function record(topic) {
  topic.events = [];
  topic.onopen = () => topic.events.push("open");
  topic.onerror = () => topic.events.push("error");
  topic.addEventListener("message", (event) =>
    topic.events.push(
      typeof event.data === "string" ? `message:${event.data}` : `binary:${[...new Uint8Array(event.data)]}`,
    ),
  );
  topic.onclose = (event) => topic.events.push(`close:${event.code}:${event.reason}:${event.wasClean}`);
  return topic;
}

const sub = (topic, options = {}) => ({ type: "subscribe", topic, options });
const unsub = (topic, code = null, reason = null) => ({ type: "unsubscribe", topic, code, reason });
const text = (topic, payload) => ({ type: "data", topic, text: payload, data: null });
const flushMicrotasks = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("WebSocket-like surface", () => {
  test("constants, url, protocol, binaryType, readyState", () => {
    const w = world();
    const room = w.open("/rooms/lobby?x=1#ignored");
    assert.deepEqual(
      ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].map((name) => MultiplexWebSocket[name]),
      [0, 1, 2, 3],
    );
    assert.deepEqual([room.CONNECTING, room.OPEN, room.CLOSING, room.CLOSED], [0, 1, 2, 3]);
    assert.equal(room.url, `${w.host}/rooms/lobby?x=1`);
    assert.equal(room.topic, "/rooms/lobby?x=1");
    assert.equal(room.protocol, "");
    assert.equal(room.binaryType, "arraybuffer");
    room.binaryType = "nonsense";
    assert.equal(room.binaryType, "arraybuffer");
    assert.equal(room.readyState, MultiplexWebSocket.CONNECTING);
    assert.ok(room instanceof EventTarget);
  });

  test("http(s) URLs become ws(s); topics are the normalised path and query", () => {
    const w = world();
    const url = w.host.replace("ws://", "http://");
    const room = new MultiplexWebSocket(`${url}/salle/café?q=a b`, w.options);
    assert.equal(room.url, `${w.host}/salle/caf%C3%A9?q=a%20b`);
    assert.equal(room.topic, "/salle/caf%C3%A9?q=a%20b");
    assert.equal(w.sockets[0].url, room.url);
  });

  test("bad URLs and topics throw SyntaxError like new WebSocket()", () => {
    const w = world();
    const urls = ["/relative/no/location", "ftp://h.test/x", `${w.host}/${"a".repeat(100)}`, `${w.host}//x`];
    for (const url of urls) {
      assert.throws(
        () => new MultiplexWebSocket(url, w.options),
        (error) => error instanceof DOMException && error.name === "SyntaxError",
        url,
      );
    }
    assert.throws(() => new MultiplexWebSocket(`${w.host}/a`, ["chat"]), TypeError);
    assert.equal(w.sockets.length, 0);
  });

  test("the physical socket offers rocket-multiplex, uses arraybuffer and the first topic's URL", () => {
    const w = world();
    w.open("/first?token=t");
    assert.equal(w.sockets.length, 1);
    assert.equal(w.sockets[0].url, `${w.host}/first?token=t`);
    assert.deepEqual(w.sockets[0].protocols, [SUBPROTOCOL]);
    assert.equal(w.sockets[0].binaryType, "arraybuffer");
  });

  test("close() checks code and reason as WebSocket.close does", () => {
    const w = world();
    const room = w.open("/room");
    for (const code of [999, 1001, 2999, 5000]) {
      assert.throws(() => room.close(code), (error) => error.name === "InvalidAccessError");
    }
    assert.throws(() => room.close(4000, "é".repeat(62)), (error) => error.name === "SyntaxError");
    assert.equal(room.readyState, MultiplexWebSocket.CONNECTING);
  });

  test("send(Blob) is refused, other values are sent as text", () => {
    const w = world();
    const room = w.open("/room");
    w.sockets[0].accept();
    assert.throws(() => room.send(new Blob(["x"])), TypeError);
    room.send(42);
    assert.deepEqual(w.sockets[0].take(), [text("/room", "42")]);
  });
});

describe("physical socket construction", () => {
  test("without a WebSocket implementation the constructor throws and leaves nothing behind", () => {
    assert.equal(typeof globalThis.WebSocket, "undefined"); // Node 20
    assert.throws(() => new MultiplexWebSocket("ws://nowhere.test/a"), TypeError);
    const w = world();
    const a = new MultiplexWebSocket("ws://nowhere.test/a", w.options);
    assert.equal(a.socket.topics.length, 1);
  });

  test("a WebSocket constructor that throws: at once it propagates, on reconnect topics close", () => {
    const w = world();
    let refuse = true;
    const Real = w.options.WebSocket;
    const options = {
      ...w.options,
      WebSocket: class extends Real {
        constructor(url, protocols) {
          if (refuse) throw new DOMException("blocked", "SecurityError");
          super(url, protocols);
        }
      },
    };
    assert.throws(() => new MultiplexWebSocket(`${w.host}/a`, options), (e) => e.name === "SecurityError");
    refuse = false;
    const a = record(new MultiplexWebSocket(`${w.host}/a`, options));
    assert.equal(a.socket.state, "connecting");
    w.sockets[0].accept();
    w.sockets[0].drop();
    refuse = true;
    w.tick();
    assert.deepEqual(a.events, ["open", "error", "close:1006:blocked:false"]);
    assert.equal(a.socket.state, "closed");
  });
});

describe("one physical socket per origin", () => {
  test("the connect topic opens with the socket; later topics SUBSCRIBE and open on OK", () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b?x=1");
    assert.equal(w.sockets.length, 1);
    assert.equal(a.socket, b.socket);
    const ws = w.sockets[0];
    ws.accept();
    assert.deepEqual(a.events, ["open"]);
    assert.equal(a.readyState, MultiplexWebSocket.OPEN);
    assert.equal(b.readyState, MultiplexWebSocket.CONNECTING);
    assert.deepEqual(ws.take(), [sub("/b?x=1")]); // nothing for the connect topic
    ws.deliver(encodeOk("SUBSCRIBE", "/b?x=1"));
    assert.deepEqual(b.events, ["open"]);
    const c = w.open("/c");
    assert.deepEqual(ws.take(), [sub("/c")]); // socket already open: at once
    ws.deliver(encodeOk("SUBSCRIBE", "/c"));
    assert.deepEqual(c.events, ["open"]);
    assert.equal(w.sockets.length, 1);
  });

  test("another port is another origin, hence another socket", () => {
    const w = world();
    w.open("/a");
    new MultiplexWebSocket(`${w.host}:8080/a`, w.options);
    new MultiplexWebSocket(w.host.replace("ws:", "wss:") + "/a", w.options);
    assert.equal(w.sockets.length, 3);
  });

  test("a topic opened twice gets a second socket (each is its own virtual connection)", () => {
    const w = world();
    const one = w.open("/room");
    const two = w.open("/room");
    assert.notEqual(one.socket, two.socket);
    assert.equal(w.sockets.length, 2);
    w.open("/other");
    assert.equal(w.sockets.length, 2);
  });

  test("messages go to their topic only; payloads keep their separators", () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    ws.deliver(encodeText("/a", `x${S}y${S}`));
    ws.deliver(encodeBinary("/b", new Uint8Array([0, 0xc2, 0xb7, 255])).buffer);
    ws.deliver(encodeText("/unknown", "dropped"));
    ws.deliver("garbage without separator");
    ws.deliver(`${S}INVALID${S}Not Subscribed`);
    assert.deepEqual(a.events, ["open", `message:x${S}y${S}`]);
    assert.deepEqual(b.events, ["open", "binary:0,194,183,255"]);
  });

  test("binary data is an ArrayBuffer holding only the payload; binaryType blob gives a Blob", async () => {
    const w = world();
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    let data;
    a.onmessage = (event) => (data = event.data);
    ws.deliver(encodeBinary("/a", new Uint8Array([7, 8])).buffer);
    assert.ok(data instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(data)], [7, 8]);
    a.binaryType = "blob";
    ws.deliver(encodeBinary("/a", new Uint8Array([9])).buffer);
    assert.ok(data instanceof Blob);
    assert.deepEqual([...new Uint8Array(await data.arrayBuffer())], [9]);
  });
});

describe("buffering", () => {
  test("bytes sent before open are the bytes at send time, as WebSocket.send copies them", () => {
    const w = world();
    const a = w.open("/a");
    const bytes = new Uint8Array([1, 2, 3]);
    a.send(bytes);
    a.send(bytes.buffer);
    bytes[0] = 9; // the caller reuses its buffer before the topic opens
    const ws = w.sockets[0];
    ws.accept();
    assert.deepEqual(ws.take(), [
      { type: "data", topic: "/a", text: null, data: new Uint8Array([1, 2, 3]) },
      { type: "data", topic: "/a", text: null, data: new Uint8Array([1, 2, 3]) },
    ]);
  });

  test("sends before open are flushed in order when the topic opens", () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b");
    a.send("a1");
    b.send("b1");
    a.send(new Uint8Array([1, 2]));
    assert.equal(a.bufferedAmount, 2 + 2); // the messages' bytes, as WebSocket counts them
    const ws = w.sockets[0];
    ws.accept();
    assert.deepEqual(ws.take(), [
      sub("/b"),
      text("/a", "a1"),
      { type: "data", topic: "/a", text: null, data: new Uint8Array([1, 2]) },
    ]);
    b.send("b2");
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    b.send("b3");
    assert.deepEqual(ws.take(), [text("/b", "b1"), text("/b", "b2"), text("/b", "b3")]);
    assert.equal(a.bufferedAmount, 0);
  });

  test("sends from an open handler go after the buffered ones", () => {
    const w = world();
    const a = w.open("/a");
    a.send("first");
    a.addEventListener("open", () => a.send("second"));
    w.sockets[0].accept();
    assert.deepEqual(w.sockets[0].take(), [text("/a", "first"), text("/a", "second")]);
  });
});

describe("closing one topic", () => {
  test("the client's close sends UNSUBSCRIBE and fires close on the server's OK", () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    ws.take();
    b.close(4000, `bye${S}now`);
    assert.equal(b.readyState, MultiplexWebSocket.CLOSING);
    assert.deepEqual(ws.take(), [unsub("/b", 4000, `bye${S}now`)]);
    b.send("discarded");
    ws.deliver(encodeText("/b", "late"));
    assert.deepEqual(ws.take(), []);
    ws.deliver(encodeOk("UNSUBSCRIBE", "/b", "4000", `bye${S}now`));
    assert.deepEqual(b.events, ["open", `close:4000:bye${S}now:true`]);
    assert.equal(b.readyState, MultiplexWebSocket.CLOSED);
    assert.deepEqual(a.events, ["open"]);
    assert.equal(ws.closedWith, null);
  });

  test("close() without a code sends a bare UNSUBSCRIBE and reports 1000", () => {
    const w = world();
    const a = w.open("/a");
    w.open("/keep");
    const ws = w.sockets[0];
    ws.accept();
    ws.take();
    a.close();
    assert.deepEqual(ws.take(), [unsub("/a")]);
    ws.deliver(encodeErr("Not Subscribed", "UNSUBSCRIBE", "/a"));
    assert.deepEqual(a.events, ["open", "close:1000::true"]);
  });

  test("closing the last topic closes the physical socket with 1000 after the OK", () => {
    const w = world();
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    a.close(4001, "done");
    assert.deepEqual(ws.take(), [unsub("/a", 4001, "done")]);
    assert.equal(ws.closedWith, null);
    ws.deliver(encodeOk("UNSUBSCRIBE", "/a"));
    assert.deepEqual(ws.closedWith, { code: 1000, reason: undefined });
    assert.deepEqual(a.events, ["open", "close:4001:done:true"]);
    // A new topic after that gets a new socket.
    w.open("/b");
    assert.equal(w.sockets.length, 2);
  });

  test("server UNSUBSCRIBE closes that topic only", () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    ws.deliver(encodeServerUnsubscribe("/a", 4000, `kicked${S}out`));
    assert.deepEqual(a.events, ["open", `close:4000:kicked${S}out:true`]);
    assert.equal(b.readyState, MultiplexWebSocket.OPEN);
    b.send("still here");
    assert.deepEqual(ws.take().at(-1), text("/b", "still here"));
    assert.equal(ws.closedWith, null);
  });

  test("server UNSUBSCRIBE of the only topic closes the physical socket", () => {
    const w = world();
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeServerUnsubscribe("/a", 1011, "join failed"));
    assert.deepEqual(a.events, ["open", "close:1011:join failed:true"]);
    assert.deepEqual(ws.closedWith, { code: 1000, reason: undefined });
  });

  test("close while CONNECTING fires an unclean 1006 and aborts an unneeded socket", async () => {
    const w = world();
    const a = w.open("/a");
    a.close(4000, "never mind");
    assert.equal(a.readyState, MultiplexWebSocket.CLOSING);
    await flushMicrotasks();
    assert.deepEqual(a.events, ["close:1006::false"]);
    assert.deepEqual(w.sockets[0].closedWith, { code: 1000, reason: undefined });
  });

  test("a connect topic closed before the socket opens is unsubscribed once it does", async () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b");
    a.close();
    await flushMicrotasks();
    const ws = w.sockets[0];
    ws.accept();
    assert.deepEqual(a.events, ["close:1006::false"]);
    assert.deepEqual(ws.take(), [unsub("/a"), sub("/b")]);
    ws.deliver(encodeOk("UNSUBSCRIBE", "/a"));
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    assert.deepEqual(b.events, ["open"]);
    assert.deepEqual(a.events, ["close:1006::false"]);
  });

  test("a topic closed while subscribing is unsubscribed when the OK comes", async () => {
    const w = world();
    w.open("/a");
    const b = w.open("/b");
    const ws = w.sockets[0];
    ws.accept();
    ws.take();
    b.close();
    await flushMicrotasks();
    assert.deepEqual(ws.take(), []); // wait for the SUBSCRIBE's reply first
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    assert.deepEqual(ws.take(), [unsub("/b")]);
    assert.deepEqual(b.events, ["close:1006::false"]);
  });

  test("a topic reopened while its UNSUBSCRIBE is pending subscribes after the OK", () => {
    const w = world();
    w.open("/keep");
    const ws = w.sockets[0];
    ws.accept();
    const first = w.open("/room");
    ws.deliver(encodeOk("SUBSCRIBE", "/room"));
    ws.take();
    first.close();
    const second = w.open("/room");
    assert.equal(second.socket, first.socket); // the first is no longer wanted there
    assert.deepEqual(ws.take(), [unsub("/room")]);
    ws.deliver(encodeOk("UNSUBSCRIBE", "/room"));
    assert.deepEqual(first.events, ["open", "close:1000::true"]);
    assert.deepEqual(ws.take(), [sub("/room")]);
    ws.deliver(encodeOk("SUBSCRIBE", "/room"));
    assert.deepEqual(second.events, ["open"]);
  });
});

describe("refused subscriptions", () => {
  test("ERR for a SUBSCRIBE fires error and close, and is not retried after a reconnect", () => {
    const w = world();
    const a = w.open("/a");
    const secret = w.open("/secret");
    const full = w.open("/full");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeErr("403 Forbidden", "SUBSCRIBE", "/secret"));
    ws.deliver(encodeErr("Too Many Topics", "SUBSCRIBE", "/full"));
    assert.deepEqual(secret.events, ["error", "close:4403:403 Forbidden:false"]);
    assert.deepEqual(full.events, ["error", "close:1008:Too Many Topics:false"]);
    assert.equal(secret.readyState, MultiplexWebSocket.CLOSED);
    assert.deepEqual(a.events, ["open"]);
    ws.drop();
    w.tick();
    w.sockets[1].accept();
    assert.deepEqual(w.sockets[1].take(), []);
    assert.equal(w.sockets[1].url, `${w.host}/a`);
  });

  test("ERR for the only topic left closes the physical socket", () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b");
    a.close();
    const ws = w.sockets[0];
    ws.accept();
    assert.deepEqual(ws.take(), [unsub("/a"), sub("/b")]);
    ws.deliver(encodeErr("404 Not Found", "SUBSCRIBE", "/b"));
    assert.deepEqual(b.events, ["error", "close:4404:404 Not Found:false"]);
    assert.deepEqual(ws.closedWith, { code: 1000, reason: undefined });
  });
});

describe("reconnection", () => {
  test("a lost connection takes open topics back to CONNECTING without a close event", () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    ws.drop(1006);
    assert.equal(a.readyState, MultiplexWebSocket.CONNECTING);
    assert.equal(b.readyState, MultiplexWebSocket.CONNECTING);
    assert.deepEqual(a.events, ["open"]);
    assert.equal(a.socket.state, "waiting");
  });

  test("it reconnects to the first wanted topic, resubscribes the others, flushes new sends", () => {
    const w = world();
    const a = w.open("/a");
    const b = w.open("/b");
    const c = w.open("/c");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    ws.deliver(encodeOk("SUBSCRIBE", "/c"));
    ws.drop(1001, "going away", true);
    a.close(); // no longer wanted: the next connect URL is /b
    b.send("while away");
    assert.deepEqual(w.tick(), [125]);
    const again = w.sockets[1];
    assert.equal(again.url, `${w.host}/b`);
    again.accept();
    assert.deepEqual(again.take(), [sub("/c"), text("/b", "while away")]);
    again.deliver(encodeOk("SUBSCRIBE", "/c"));
    assert.deepEqual(b.events, ["open", "open"]);
    assert.deepEqual(c.events, ["open", "open"]);
  });

  test("full-jitter exponential backoff, capped, reset once connected", () => {
    const w = world({
      random: () => 0.999,
      backoffBase: 100,
      backoffCap: 1000,
    });
    w.open("/a");
    const delays = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      w.sockets.at(-1).drop(); // the handshake fails: also a lost connection
      delays.push(...w.tick().map(Math.round));
    }
    assert.deepEqual(delays, [100, 200, 400, 799, 999, 999]);
    assert.equal(w.sockets.length, 7);
    w.sockets.at(-1).accept();
    w.sockets.at(-1).drop();
    assert.deepEqual(w.tick().map(Math.round), [100]);
  });

  test("the delay is random(0, ceiling): full jitter", () => {
    const values = [0, 0.25, 0.5];
    const w = world({ random: () => values.shift() });
    w.open("/a");
    const delays = [];
    for (let i = 0; i < 3; i++) {
      w.sockets.at(-1).drop();
      delays.push(...w.tick());
    }
    assert.deepEqual(delays, [0 * 250, 0.25 * 500, 0.5 * 1000]);
  });

  test("a refused handshake rotates the connect URL so the other topics can connect", () => {
    const w = world();
    const locked = w.open("/locked");
    const free = w.open("/free");
    w.sockets[0].drop(1006); // e.g. HTTP 403 on /locked: never opened
    w.tick();
    const again = w.sockets[1];
    assert.equal(again.url, `${w.host}/free`);
    again.accept();
    assert.deepEqual(free.events, ["open"]);
    assert.deepEqual(again.take(), [sub("/locked")]);
    again.deliver(encodeErr("403 Forbidden", "SUBSCRIBE", "/locked"));
    assert.deepEqual(locked.events, ["error", "close:4403:403 Forbidden:false"]);
  });

  test("a close pending when the connection is lost fires an unclean 1006", () => {
    const w = world();
    const a = w.open("/a");
    w.open("/b");
    const ws = w.sockets[0];
    ws.accept();
    a.close(4000, "bye");
    ws.drop();
    assert.deepEqual(a.events, ["open", "close:1006::false"]);
  });

  test("the shared socket reports each state change, never from inside its own step", async () => {
    const w = world();
    const a = w.open("/a");
    const seen = [];
    a.socket.addEventListener("statechange", (event) => seen.push([event.state, a.socket.state]));
    w.sockets[0].accept();
    w.sockets[0].drop(1006);
    assert.deepEqual(seen, []); // dispatched later, from microtasks
    await flushMicrotasks();
    assert.deepEqual(seen, [
      ["connecting", "waiting"],
      ["open", "waiting"],
      ["waiting", "waiting"],
    ]);
    w.tick();
    w.sockets[1].accept();
    // A listener may act on the socket: closing the last topic from it is safe.
    a.socket.addEventListener("statechange", (event) => {
      if (event.state === "open") a.close();
    });
    await flushMicrotasks();
    w.sockets[1].deliver(encodeOk("UNSUBSCRIBE", "/a"));
    await flushMicrotasks();
    assert.deepEqual(
      seen.slice(3).map(([state]) => state),
      ["connecting", "open", "closed"],
    );
    assert.deepEqual(a.events, ["open", "open", "close:1000::true"]);
    assert.equal(w.timers.length, 0);
  });

  test("closing every topic during the backoff cancels the reconnect", async () => {
    const w = world();
    const a = w.open("/a");
    w.sockets[0].accept();
    w.sockets[0].drop();
    assert.equal(w.timers.length, 1);
    a.close();
    await flushMicrotasks();
    assert.equal(w.timers.length, 0);
    assert.deepEqual(a.events, ["open", "close:1006::false"]);
    assert.equal(a.socket.state, "closed");
  });

  test("stop codes close every topic with that code and do not reconnect", () => {
    for (const code of [1008, 3000, 3003, 4401, 4403]) {
      const w = world();
      const a = w.open("/a");
      const b = w.open("/b");
      const ws = w.sockets[0];
      ws.accept();
      ws.drop(code, "go away", true);
      assert.deepEqual(a.events, ["open", `close:${code}:go away:true`]);
      assert.deepEqual(b.events, [`close:${code}:go away:true`]);
      assert.equal(w.timers.length, 0);
      assert.equal(w.sockets.length, 1);
    }
  });

  test("the stop codes are configurable", () => {
    const w = world({ stopCodes: [4000] });
    const a = w.open("/a");
    w.sockets[0].accept();
    w.sockets[0].drop(4401);
    assert.equal(w.timers.length, 1);
    w.tick();
    w.sockets[1].accept();
    w.sockets[1].drop(4000, "bye", true);
    assert.deepEqual(a.events, ["open", "open", "close:4000:bye:true"]);
    assert.equal(w.timers.length, 0);
  });

  test("a stale socket's late events are ignored", () => {
    const w = world();
    const a = w.open("/a");
    const old = w.sockets[0];
    old.accept();
    old.drop();
    w.tick();
    old.deliver(encodeText("/a", "ghost"));
    old.drop();
    assert.equal(w.timers.length, 0);
    assert.deepEqual(a.events, ["open"]);
  });

  test("a topic opened from a close handler of the last topic gets a fresh socket", () => {
    const w = world();
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    let next;
    a.addEventListener("close", () => (next = w.open("/b")));
    ws.deliver(encodeServerUnsubscribe("/a", 4000, "moved"));
    assert.equal(w.sockets.length, 2);
    w.sockets[1].accept();
    assert.deepEqual(next.events, ["open"]);
  });
});

describe("a subscription the server made on its own", () => {
  test("is declined with UNSUBSCRIBE, and a page opening that topic later gets its own", () => {
    const w = world();
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/pushed")); // Broker.subscribe on the server
    assert.deepEqual(ws.take(), [unsub("/pushed")]);
    const pushed = w.open("/pushed"); // opened by the page before the server confirmed
    assert.deepEqual(ws.take(), []); // waits for the UNSUBSCRIBE's OK
    ws.deliver(encodeOk("UNSUBSCRIBE", "/pushed"));
    assert.deepEqual(ws.take(), [sub("/pushed")]);
    ws.deliver(encodeOk("SUBSCRIBE", "/pushed"));
    assert.deepEqual(pushed.events, ["open"]);
    assert.deepEqual(a.events, ["open"]);
  });
});

describe("a reply that does not come", () => {
  test("a SUBSCRIBE unanswered for replyTimeout replaces the socket, every topic subscribed again", () => {
    const w = world({ replyTimeout: 3000 });
    const a = w.open("/a");
    const b = w.open("/b");
    const ws = w.sockets[0];
    ws.accept();
    assert.deepEqual(ws.take(), [sub("/b")]);
    assert.deepEqual(w.tick(3000), [3000]); // no OK, no ERR: a guard hung, or the network
    assert.deepEqual(ws.closedWith, { code: NO_REPLY_CODE, reason: "no reply" });
    assert.equal(a.socket.state, "waiting");
    assert.equal(a.readyState, MultiplexWebSocket.CONNECTING); // was open: lost, not closed
    assert.equal(b.readyState, MultiplexWebSocket.CONNECTING);
    assert.deepEqual([...a.events, ...b.events], ["open"]);
    ws.deliver(encodeOk("SUBSCRIBE", "/b")); // too late, on the old socket: ignored
    assert.equal(b.readyState, MultiplexWebSocket.CONNECTING);
    assert.deepEqual(w.tick(), [125]); // the backoff
    const again = w.sockets[1];
    again.accept();
    assert.deepEqual(again.take(), [sub("/b")]);
    again.deliver(encodeOk("SUBSCRIBE", "/b"));
    assert.deepEqual(w.tick(), []); // answered: no timer left
    assert.deepEqual(a.events, ["open", "open"]);
    assert.deepEqual(b.events, ["open"]);
    assert.equal(again.closedWith, null);
  });

  test("an UNSUBSCRIBE unanswered replaces the socket; the closing topic ends as on a lost connection", () => {
    const w = world({ replyTimeout: 3000 });
    const a = w.open("/a");
    const b = w.open("/b");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    b.close(4000, "done");
    assert.deepEqual(ws.take(), [sub("/b"), unsub("/b", 4000, "done")]);
    assert.deepEqual(w.tick(3000), [3000]);
    assert.equal(ws.closedWith.code, NO_REPLY_CODE);
    assert.deepEqual(b.events, ["open", "close:1006::false"]);
    w.tick();
    w.sockets[1].accept();
    assert.deepEqual(w.sockets[1].take(), []); // /b is not wanted any more
    assert.deepEqual(a.events, ["open", "open"]);
  });

  test("the connect topic's OK is waited for too (extensions)", () => {
    const w = world({ extensions: true, replyTimeout: 3000 });
    const a = w.open("/a");
    w.sockets[0].accept();
    assert.deepEqual(w.tick(), [3000]);
    assert.equal(w.sockets[0].closedWith.code, NO_REPLY_CODE);
    assert.equal(a.readyState, MultiplexWebSocket.CONNECTING);
    assert.equal(a.socket.state, "waiting");
  });

  test("replies in time cancel their timers; by default there is none (slow handlers delay replies)", () => {
    const w = world({ replyTimeout: 3000 });
    w.open("/a");
    w.open("/b");
    w.sockets[0].accept();
    assert.deepEqual(w.timers.map((timer) => timer.ms), [3000]);
    w.sockets[0].deliver(encodeErr("Forbidden", "SUBSCRIBE", "/b"));
    assert.deepEqual(w.timers, []);
    const patient = world();
    patient.open("/a");
    patient.open("/b");
    patient.sockets[0].accept();
    assert.deepEqual(patient.timers, []);
  });

  test("a lost connection and a closed socket leave no reply timer behind", () => {
    const w = world({ replyTimeout: 3000 });
    w.open("/a");
    w.open("/b");
    w.sockets[0].accept();
    w.sockets[0].drop();
    assert.deepEqual(w.timers.map((timer) => timer.ms), [125]); // the backoff only
    const v = world({ replyTimeout: 3000 });
    const c = v.open("/c");
    v.open("/d");
    v.sockets[0].accept();
    c.socket._finish();
    assert.deepEqual(v.timers, []);
  });
});

describe("extensions: meta subscriptions and requests", () => {
  const meta = (topic, payload, id = null) => ({
    type: "data",
    topic,
    text: `${id === null ? "" : `id=${id}`}${S}${payload}`,
    data: null,
  });
  /** A world whose topics ask for the extensions; `/a` is open with meta granted. */
  function metaWorld() {
    const w = world({ extensions: true });
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    return { w, a, ws };
  }

  test("the connect URL carries the options; the topic opens on the server's OK", () => {
    const { w, a, ws } = metaWorld();
    assert.equal(ws.url, `${w.host}/a?rocket-multiplex=meta,positions,presence`);
    assert.equal(a.url, `${w.host}/a`); // the topic's own URL is untouched
    assert.equal(a.readyState, MultiplexWebSocket.CONNECTING);
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    assert.equal(a.readyState, MultiplexWebSocket.OPEN);
    a.send("hi");
    assert.deepEqual(ws.take(), [meta("/a", "hi")]);
  });

  test("later topics SUBSCRIBE with meta; a plain OK means a plain subscription", () => {
    const { w, ws } = metaWorld();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    const b = w.open("/b");
    const c = w.open("/c");
    const options = { meta: "", positions: "", presence: "" };
    assert.deepEqual(ws.take(), [sub("/b", options), sub("/c", options)]);
    ws.deliver(encodeOk("SUBSCRIBE", "/b", "meta"));
    ws.deliver(encodeOk("SUBSCRIBE", "/c")); // a server that ignores the option
    b.send("x");
    c.send("y");
    assert.deepEqual(ws.take(), [meta("/b", "x"), text("/c", "y")]);
    ws.deliver(`/b${S}${S}from server`);
    ws.deliver(`/c${S}plain${S}payload`);
    assert.deepEqual(b.events, ["open", "message:from server"]);
    assert.deepEqual(c.events, ["open", `message:plain${S}payload`]);
  });

  test("request resolves with the reply to its id, in any order", async () => {
    const { a, ws } = metaWorld();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    const first = a.request("one");
    const second = a.request(new Uint8Array([7]));
    assert.deepEqual(ws.take(), [
      meta("/a", "one", 1),
      { type: "data", topic: "/a", text: null, data: new Uint8Array([...new TextEncoder().encode(`id=2${S}`), 7]) },
    ]);
    ws.deliver(`/a${S}reply=2${S}two`);
    ws.deliver(`/a${S}reply=1${S}uno`);
    assert.equal(await first, "uno");
    assert.equal(await second, "two");
    assert.deepEqual(a.events, ["open"]); // replies are not message events
  });

  test("100 pipelined requests each get their own reply", async () => {
    const { a, ws } = metaWorld();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    const pending = Array.from({ length: 100 }, (_, i) => a.request(`q${i}`));
    const sent = ws.take();
    assert.equal(sent.length, 100);
    for (const frame of sent.reverse()) {
      const [items, payload] = frame.text.split(S);
      ws.deliver(`/a${S}reply=${items.slice(3)}${S}answer to ${payload}`);
    }
    const answers = await Promise.all(pending);
    assert.deepEqual(answers, Array.from({ length: 100 }, (_, i) => `answer to q${i}`));
  });

  test("an error reply rejects with the code and reason; the topic stays open", async () => {
    const { a, ws } = metaWorld();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    const failing = a.request("bad");
    ws.deliver(`/a${S}reply=1,error=1007${S}invalid payload`);
    await assert.rejects(failing, (error) => {
      assert.ok(error instanceof RequestError);
      assert.deepEqual([error.kind, error.code, error.reason], ["error", 1007, "invalid payload"]);
      return true;
    });
    assert.equal(a.readyState, MultiplexWebSocket.OPEN);
  });

  test("timeout rejects once, and a late reply is ignored", async () => {
    const { w, a, ws } = metaWorld();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    const slow = a.request("slow", { timeout: 1234 });
    assert.deepEqual(w.tick(), [1234]);
    await assert.rejects(slow, (error) => error instanceof RequestError && error.kind === "timeout");
    ws.deliver(`/a${S}reply=1${S}late`);
    assert.deepEqual(a.events, ["open"]);
  });

  test("closing the topic or losing the connection rejects requests in flight", async () => {
    const { w, a, ws } = metaWorld();
    const b = w.open("/b");
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    ws.deliver(encodeOk("SUBSCRIBE", "/b", "meta"));
    const onB = b.request("x");
    b.close();
    await assert.rejects(onB, (error) => error instanceof RequestError && error.kind === "closed");
    const onA = a.request("y");
    ws.drop();
    await assert.rejects(onA, (error) => error instanceof RequestError && error.kind === "closed");
    // A reply arriving on the next connection for the old id settles nothing twice.
    w.tick();
    const again = w.sockets[1];
    again.accept();
    again.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    again.deliver(`/a${S}reply=2${S}stale`);
    assert.equal(a.readyState, MultiplexWebSocket.OPEN);
    assert.deepEqual(a.events, ["open", "open"]);
  });

  test("a request made while connecting is sent on open; refused without meta", async () => {
    const w = world({ extensions: true });
    const a = w.open("/a");
    const early = a.request("early");
    const ws = w.sockets[0];
    ws.accept();
    assert.deepEqual(ws.take(), []);
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    assert.deepEqual(ws.take(), [meta("/a", "early", 1)]);
    ws.deliver(`/a${S}reply=1${S}ok`);
    assert.equal(await early, "ok");

    const plain = w.open("/plain");
    const refused = plain.request("q");
    ws.deliver(encodeOk("SUBSCRIBE", "/plain"));
    await assert.rejects(refused, (error) => error instanceof RequestError && error.kind === "error");
    await assert.rejects(plain.request("q2"), (error) => error.kind === "error");
  });

  test("a request on a closed topic rejects at once", async () => {
    const { a } = metaWorld();
    a.close();
    await assert.rejects(a.request("x"), (error) => error instanceof RequestError && error.kind === "closed");
  });
});

describe("extensions: stream positions and recovery", () => {
  const asked = { meta: "", positions: "", presence: "" };
  const since = (position) => ({ ...asked, since: position });
  /** `·OK·SUBSCRIBE·topic·meta,positions,epoch=E,offset=N[,recovered=…]`. */
  const okAt = (topic, epoch, offset, recovered = null) =>
    encodeOk(
      "SUBSCRIBE",
      topic,
      `meta,positions,epoch=${epoch},offset=${offset}${recovered === null ? "" : `,recovered=${recovered}`}`,
    );
  /** A data frame of a meta subscription: `topic·items·payload`. */
  const frame = (topic, items, payload) => `${topic}${S}${items}${S}${payload}`;
  /** Record `subscribed` events among the others, as `subscribed:wasRecovering:recovered`. */
  function withSubscribed(topic) {
    topic.addEventListener("subscribed", (event) =>
      topic.events.push(`subscribed:${event.wasRecovering}:${event.recovered}`),
    );
    return topic;
  }
  /** `/a` (the connect topic) and `/b`, both asking for the extensions, the socket open. */
  function positionsWorld(extra = {}) {
    const w = world({ extensions: true, ...extra });
    const a = withSubscribed(w.open("/a"));
    const b = withSubscribed(w.open("/b"));
    const ws = w.sockets[0];
    ws.accept();
    return { w, a, b, ws };
  }
  /** Lose the connection and reconnect: the new physical socket, open. */
  function reconnect(w) {
    w.sockets.at(-1).drop(1006);
    w.tick();
    const again = w.sockets.at(-1);
    again.accept();
    return again;
  }

  test("positions are asked for in the connect URL and on SUBSCRIBE", () => {
    const { w, ws } = positionsWorld();
    assert.equal(ws.url, `${w.host}/a?rocket-multiplex=meta,positions,presence`);
    assert.deepEqual(ws.take(), [sub("/b", asked)]);
  });

  test("the connect URL keeps the topic's own query exactly as the topic names it", () => {
    const w = world({ extensions: true });
    const a = w.open("/a?q=a b&t=~&flag");
    const b = new MultiplexWebSocket(`${w.host}:81/b?`, w.options); // an empty query
    assert.equal(a.topic, "/a?q=a%20b&t=~&flag");
    assert.equal(w.sockets[0].url, `${w.host}/a?q=a%20b&t=~&flag&rocket-multiplex=meta,positions,presence`);
    assert.equal(b.topic, "/b");
    assert.equal(w.sockets[1].url, `${w.host}:81/b?rocket-multiplex=meta,positions,presence`);
    w.sockets[0].accept();
    w.sockets[0].deliver(okAt("/a?q=a%20b&t=~&flag", "E", 0));
    assert.equal(a.readyState, MultiplexWebSocket.OPEN);
  });

  test("the position follows the OK, then each publication; duplicates are dropped", async () => {
    const { a, b, ws } = positionsWorld();
    assert.equal(a.position, null);
    ws.deliver(okAt("/a", "Xy1_-z", 17));
    ws.deliver(okAt("/b", "Q2w", 0));
    assert.deepEqual(a.position, { epoch: "Xy1_-z", offset: 17 });
    assert.deepEqual(b.position, { epoch: "Q2w", offset: 0 });
    ws.deliver(frame("/a", "offset=18", "one"));
    ws.deliver(frame("/a", "offset=18", "one again")); // a duplicate
    ws.deliver(frame("/a", "offset=12", "older")); // delivered long ago
    ws.deliver(frame("/a", "", "for this client only")); // no offset: not a publication
    ws.deliver(frame("/a", "offset=20", "two")); // a gap is not the client's to fill
    ws.deliver(encodeBinary("/a", new TextEncoder().encode(`offset=21${S}\u0001`)).buffer);
    ws.deliver(encodeBinary("/a", new TextEncoder().encode(`offset=21${S}\u0002`)).buffer);
    assert.deepEqual(a.events, [
      "open",
      "subscribed:false:false",
      "message:one",
      "message:for this client only",
      "message:two",
      "binary:1",
    ]);
    assert.deepEqual(a.position, { epoch: "Xy1_-z", offset: 21 });
    // Replies do not move it either.
    const answer = a.request("q");
    ws.deliver(frame("/a", "reply=1", "r"));
    assert.equal(await answer, "r");
    assert.deepEqual(a.position, { epoch: "Xy1_-z", offset: 21 });
    // Positions are per topic.
    ws.deliver(frame("/b", "offset=1", "b1"));
    assert.deepEqual(b.position, { epoch: "Q2w", offset: 1 });
    assert.deepEqual(b.events, ["open", "subscribed:false:false", "message:b1"]);
  });

  test("a publication with an epoch starts the new epoch, even at a lower offset", () => {
    const { a, ws } = positionsWorld();
    ws.deliver(okAt("/a", "old", 40));
    ws.deliver(frame("/a", "offset=1,epoch=Nw3_a", "reset"));
    ws.deliver(frame("/a", "offset=2", "next"));
    ws.deliver(frame("/a", "offset=2", "dup"));
    assert.deepEqual(a.events, ["open", "subscribed:false:false", "message:reset", "message:next"]);
    assert.deepEqual(a.position, { epoch: "Nw3_a", offset: 2 });
  });

  test("an OK granting positions without one: the first publication's epoch sets it", () => {
    // The server could not read the stream: no epoch or offset in the OK.
    const { a, ws } = positionsWorld();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta,positions"));
    assert.equal(a.position, null);
    ws.deliver(frame("/a", "offset=5", "no epoch known"));
    assert.equal(a.position, null);
    ws.deliver(frame("/a", "offset=6,epoch=E", "six"));
    ws.deliver(frame("/a", "offset=6", "dup"));
    assert.deepEqual(a.events, ["open", "subscribed:false:false", "message:no epoch known", "message:six"]);
    assert.deepEqual(a.position, { epoch: "E", offset: 6 });
  });

  test("a malformed position is a server bug: the payload is delivered, the position kept", () => {
    const { a, ws } = positionsWorld();
    ws.deliver(okAt("/a", "E", 3));
    ws.deliver(frame("/a", "offset=007", "x"));
    ws.deliver(frame("/a", "offset=9007199254740992", "y"));
    ws.deliver(frame("/a", "offset=4,epoch=a:b", "z"));
    assert.deepEqual(a.events, ["open", "subscribed:false:false", "message:x", "message:y", "message:z"]);
    assert.deepEqual(a.position, { epoch: "E", offset: 3 });
  });

  test("after a lost connection each topic resubscribes from its position", () => {
    const { w, a, b, ws } = positionsWorld();
    ws.take();
    ws.deliver(okAt("/a", "Xy1_-z", 17));
    ws.deliver(okAt("/b", "Q2w", 0));
    ws.deliver(frame("/a", "offset=18", "a18"));
    ws.deliver(frame("/b", "offset=1", "b1"));
    const again = reconnect(w);
    // The connect topic's since rides on the URL, the other topic's on its SUBSCRIBE.
    assert.equal(again.url, `${w.host}/a?rocket-multiplex=meta,positions,presence,since=Xy1_-z:18`);
    assert.deepEqual(again.take(), [sub("/b", since("Q2w:1"))]);
    // Kept while away, for the next attempt too.
    assert.deepEqual(a.position, { epoch: "Xy1_-z", offset: 18 });
    const third = reconnect(w);
    assert.equal(third.url, `${w.host}/a?rocket-multiplex=meta,positions,presence,since=Xy1_-z:18`);
    assert.deepEqual(third.take(), [sub("/b", since("Q2w:1"))]);
    assert.deepEqual(b.position, { epoch: "Q2w", offset: 1 });
  });

  test("a recovered resubscription: subscribed (true, true), then the replay, in order", () => {
    const { w, a, b, ws } = positionsWorld();
    ws.deliver(okAt("/a", "E", 17));
    ws.deliver(okAt("/b", "F", 2));
    ws.deliver(frame("/a", "offset=18", "live 18"));
    const again = reconnect(w);
    again.take();
    again.deliver(okAt("/a", "E", 18, true));
    // The replay, overlapping what the client had: 18 is dropped.
    again.deliver(frame("/a", "offset=18", "live 18"));
    again.deliver(frame("/a", "offset=19", "missed 19"));
    again.deliver(frame("/a", "offset=20", "missed 20"));
    again.deliver(okAt("/b", "F", 2, true));
    assert.deepEqual(a.events, [
      "open",
      "subscribed:false:false",
      "message:live 18",
      "open",
      "subscribed:true:true",
      "message:missed 19",
      "message:missed 20",
    ]);
    assert.deepEqual(a.position, { epoch: "E", offset: 20 });
    assert.deepEqual(b.events, ["open", "subscribed:false:false", "open", "subscribed:true:true"]);
  });

  test("a refused recovery: subscribed (true, false), and the position is the OK's", () => {
    const { w, a, b, ws } = positionsWorld();
    ws.deliver(okAt("/a", "Xy1_-z", 17));
    ws.deliver(okAt("/b", "E", 5));
    const again = reconnect(w);
    assert.deepEqual(again.take(), [sub("/b", since("E:5"))]);
    again.deliver(okAt("/a", "Q2w", 340, false)); // too far behind, or a new epoch
    again.deliver(frame("/a", "offset=340", "already counted"));
    again.deliver(frame("/a", "offset=341", "live"));
    again.deliver(okAt("/b", "E", 9, false));
    assert.deepEqual(a.events, [
      "open",
      "subscribed:false:false",
      "open",
      "subscribed:true:false",
      "message:live",
    ]);
    assert.deepEqual(a.position, { epoch: "Q2w", offset: 341 });
    assert.deepEqual(b.events, ["open", "subscribed:false:false", "open", "subscribed:true:false"]);
    assert.deepEqual(b.position, { epoch: "E", offset: 9 });
    // The next reconnect recovers from there.
    const third = reconnect(w);
    assert.equal(third.url, `${w.host}/a?rocket-multiplex=meta,positions,presence,since=Q2w:341`);
    assert.deepEqual(third.take(), [sub("/b", since("E:9"))]);
  });

  test("a topic without history: no position, no since, subscribed (false, false) each time", () => {
    const { w, a, b, ws } = positionsWorld();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta")); // positions not granted
    ws.deliver(encodeOk("SUBSCRIBE", "/b", "meta"));
    ws.deliver(frame("/a", "offset=3", "offset ignored"));
    ws.deliver(frame("/a", "offset=3", "not a duplicate either"));
    assert.equal(a.position, null);
    const again = reconnect(w);
    assert.equal(again.url, `${w.host}/a?rocket-multiplex=meta,positions,presence`);
    assert.deepEqual(again.take(), [sub("/b", asked)]);
    again.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    again.deliver(encodeOk("SUBSCRIBE", "/b", "meta"));
    assert.deepEqual(a.events, [
      "open",
      "subscribed:false:false",
      "message:offset ignored",
      "message:not a duplicate either",
      "open",
      "subscribed:false:false",
    ]);
    assert.deepEqual(b.events, ["open", "subscribed:false:false", "open", "subscribed:false:false"]);
    assert.equal(b.position, null);
  });

  test("a topic that loses its history forgets its position", () => {
    const { w, a, ws } = positionsWorld();
    ws.deliver(okAt("/a", "E", 4));
    const again = reconnect(w);
    again.deliver(encodeOk("SUBSCRIBE", "/a", "meta")); // say, the app changed meanwhile
    assert.equal(a.position, null);
    assert.deepEqual(a.events.slice(2), ["open", "subscribed:true:false"]);
    assert.equal(reconnect(w).url, `${w.host}/a?rocket-multiplex=meta,positions,presence`);
  });

  test("a new MultiplexWebSocket for the same topic starts without a position", () => {
    const { w, b, ws } = positionsWorld();
    ws.deliver(okAt("/a", "E", 1));
    ws.deliver(okAt("/b", "E", 7));
    ws.take();
    b.close();
    ws.deliver(encodeOk("UNSUBSCRIBE", "/b"));
    const reopened = withSubscribed(w.open("/b"));
    assert.equal(reopened.position, null);
    assert.deepEqual(ws.take(), [unsub("/b"), sub("/b", asked)]);
    ws.deliver(okAt("/b", "E", 9));
    assert.deepEqual(reopened.events, ["open", "subscribed:false:false"]);
  });

  test("a topic closed during its recovering SUBSCRIBE and opened again gets none of that recovery", async () => {
    const { w, b, ws } = positionsWorld();
    ws.deliver(okAt("/a", "E", 1));
    ws.deliver(okAt("/b", "E", 5));
    ws.deliver(frame("/b", "offset=6", "old-6"));
    const again = reconnect(w);
    assert.deepEqual(again.take(), [sub("/b", since("E:6"))]);
    b.close(); // gone before the OK; opened again at once, as a new object
    await flushMicrotasks();
    const fresh = withSubscribed(w.open("/b"));
    assert.equal(fresh.socket, b.socket);
    again.deliver(okAt("/a", "E", 9, true));
    again.deliver(okAt("/b", "E", 6, true)); // the old object's recovery...
    again.deliver(frame("/b", "offset=7", "old-7")); // ...and its replay: not for the new one
    assert.deepEqual(again.take(), [unsub("/b")]);
    again.deliver(encodeOk("UNSUBSCRIBE", "/b"));
    assert.deepEqual(again.take(), [sub("/b", asked)]); // the new object's own subscription
    again.deliver(okAt("/b", "E", 9));
    again.deliver(frame("/b", "offset=10", "live-10"));
    assert.deepEqual(fresh.events, ["open", "subscribed:false:false", "message:live-10"]);
    assert.deepEqual(fresh.position, { epoch: "E", offset: 10 });
  });

  test("the same through the connect URL: the reopened topic subscribes on its own", async () => {
    const w = world({ extensions: true });
    const room = withSubscribed(w.open("/room"));
    w.open("/other");
    w.sockets[0].accept();
    w.sockets[0].deliver(okAt("/room", "E", 6));
    w.sockets[0].deliver(encodeOk("SUBSCRIBE", "/other", "meta"));
    w.sockets[0].drop();
    w.tick();
    const again = w.sockets[1];
    assert.match(again.url, /since=E:6$/);
    room.close();
    await flushMicrotasks();
    const fresh = withSubscribed(w.open("/room"));
    again.accept();
    again.take();
    again.deliver(okAt("/room", "E", 6, true)); // the handshake's, asked for the old object
    assert.deepEqual(fresh.events, []);
    assert.deepEqual(again.take(), [unsub("/room")]);
    again.deliver(encodeOk("UNSUBSCRIBE", "/room"));
    assert.deepEqual(again.take(), [sub("/room", asked)]);
    again.deliver(okAt("/room", "E", 8));
    assert.deepEqual(fresh.events, ["open", "subscribed:false:false"]);
  });

  test("an ERR for a topic reopened meanwhile asks again for the new object", async () => {
    const { w, b, ws } = positionsWorld();
    ws.deliver(okAt("/a", "E", 1));
    b.close();
    await flushMicrotasks();
    const fresh = withSubscribed(w.open("/b"));
    ws.take();
    ws.deliver(encodeErr("503 Service Unavailable", "SUBSCRIBE", "/b", "meta,positions,presence"));
    assert.deepEqual(ws.take(), [sub("/b", asked)]);
    ws.deliver(okAt("/b", "E", 2));
    assert.deepEqual(fresh.events, ["open", "subscribed:false:false"]);
  });

  test("position is a copy; onsubscribed is called with the topic as this", () => {
    const { a, ws } = positionsWorld();
    const seen = [];
    a.onsubscribed = function (event) {
      seen.push([this === a, event.type, event.wasRecovering, event.recovered, this.position]);
    };
    ws.deliver(okAt("/a", "E", 1));
    assert.deepEqual(seen, [[true, "subscribed", false, false, { epoch: "E", offset: 1 }]]);
    a.position.offset = 99;
    assert.deepEqual(a.position, { epoch: "E", offset: 1 });
  });

  test("a topic closed from its open listener gets no subscribed event", () => {
    const { a, ws } = positionsWorld();
    a.addEventListener("open", () => a.close());
    ws.deliver(okAt("/a", "E", 1));
    assert.deepEqual(a.events, ["open"]);
  });

  test("without extensions: subscribed (false, false) on every open, and no position", () => {
    const w = world(); // extensions: false
    const a = withSubscribed(w.open("/a"));
    const b = withSubscribed(w.open("/b"));
    const ws = w.sockets[0];
    assert.equal(ws.url, `${w.host}/a`);
    ws.accept();
    assert.deepEqual(ws.take(), [sub("/b")]);
    ws.deliver(encodeOk("SUBSCRIBE", "/b"));
    ws.deliver(encodeText("/a", `offset=1${S}x`)); // no metadata here: all payload
    const again = reconnect(w);
    assert.equal(again.url, `${w.host}/a`);
    assert.deepEqual(again.take(), [sub("/b")]);
    again.deliver(encodeOk("SUBSCRIBE", "/b"));
    assert.deepEqual(a.events, [
      "open",
      "subscribed:false:false",
      `message:offset=1${S}x`,
      "open",
      "subscribed:false:false",
    ]);
    assert.deepEqual(b.events, ["open", "subscribed:false:false", "open", "subscribed:false:false"]);
    assert.equal(a.position, null);
  });
});

describe("extensions: presence", () => {
  const asked = { meta: "", positions: "", presence: "" };
  /** `·OK·SUBSCRIBE·topic·meta,presence,client=ID[,…more]`. */
  const okPresence = (topic, client, more = "") => encodeOk("SUBSCRIBE", topic, `meta,presence,client=${client}${more}`);
  const state = (topic, clients) => `${topic}${S}presence=state${S}${JSON.stringify(clients)}`;
  const diff = (topic, joins = {}, leaves = {}) =>
    `${topic}${S}presence=diff${S}${JSON.stringify({ joins, leaves })}`;
  const ann1 = { user: "ann", info: { name: "Ann" } };
  const ann2 = { user: "ann", info: { name: "Ann", tab: 2 } };
  const bob = { user: "bob", info: { name: "Bob" } };
  const anon = { user: null, info: null };
  /** `presence` as plain data: `[user, [clientId, info]…]` per entry. */
  const list = (topic) => topic.presence.map((entry) => [entry.user, ...entry.clients.map((c) => [c.clientId, c.info])]);
  /** Record `subscribed` and `presence` events among the others; a presence event as `presence:+joined,-left`. */
  function withPresence(topic) {
    topic.addEventListener("subscribed", () => topic.events.push("subscribed"));
    topic.addEventListener("presence", (event) => {
      const changes = [...event.joins.map((c) => `+${c.clientId}`), ...event.leaves.map((c) => `-${c.clientId}`)];
      topic.events.push(`presence:${changes.join(",")}`);
    });
    return topic;
  }
  /** `/a` (the connect topic) and `/b`, both asking for the extensions, the socket open. */
  function presenceWorld() {
    const w = world({ extensions: true });
    const a = withPresence(w.open("/a"));
    const b = withPresence(w.open("/b"));
    const ws = w.sockets[0];
    ws.accept();
    return { w, a, b, ws };
  }
  function reconnect(w) {
    w.sockets.at(-1).drop(1006);
    w.tick();
    const again = w.sockets.at(-1);
    again.accept();
    return again;
  }

  test("presence is asked for in the connect URL and on SUBSCRIBE, with since on a reconnect", () => {
    const { w, ws } = presenceWorld();
    assert.equal(ws.url, `${w.host}/a?rocket-multiplex=meta,positions,presence`);
    assert.deepEqual(ws.take(), [sub("/b", asked)]);
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta,positions,presence,client=c1,epoch=E,offset=3"));
    ws.deliver(encodeOk("SUBSCRIBE", "/b", "meta,positions,presence,client=c2,epoch=F,offset=0"));
    const again = reconnect(w);
    assert.equal(again.url, `${w.host}/a?rocket-multiplex=meta,positions,presence,since=E:3`);
    assert.deepEqual(again.take(), [sub("/b", { ...asked, since: "F:0" })]);
  });

  test("the OK names this client; the state, then diffs, build the list grouped by user", () => {
    const { a, ws } = presenceWorld();
    assert.equal(a.clientId, null);
    assert.deepEqual(a.presence, []);
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta,positions,presence,client=Xk2_9.14,epoch=E,offset=0"));
    assert.equal(a.clientId, "Xk2_9.14");
    ws.deliver(state("/a", { "Xk2_9.14": ann1, "Qz.3": anon }));
    assert.deepEqual(list(a), [
      ["ann", ["Xk2_9.14", { name: "Ann" }]],
      [null, ["Qz.3", null]],
    ]);
    // Ann's second tab joins her entry; Bob and another anonymous client get their own.
    ws.deliver(diff("/a", { "w2.1": ann2, "w2.2": bob, "w2.3": anon }));
    assert.deepEqual(list(a), [
      ["ann", ["Xk2_9.14", { name: "Ann" }], ["w2.1", { name: "Ann", tab: 2 }]],
      [null, ["Qz.3", null]],
      ["bob", ["w2.2", { name: "Bob" }]],
      [null, ["w2.3", null]],
    ]);
    // Ann's first tab leaves: her entry keeps its place with the other tab.
    ws.deliver(diff("/a", {}, { "Xk2_9.14": ann1, "Qz.3": anon }));
    assert.deepEqual(list(a), [
      ["ann", ["w2.1", { name: "Ann", tab: 2 }]],
      ["bob", ["w2.2", { name: "Bob" }]],
      [null, ["w2.3", null]],
    ]);
    assert.deepEqual(a.events, [
      "open",
      "subscribed",
      "presence:+Xk2_9.14,+Qz.3",
      "presence:+w2.1,+w2.2,+w2.3",
      "presence:-Xk2_9.14,-Qz.3",
    ]);
  });

  test("a join of a known client replaces it in place; diffs that change nothing fire nothing", () => {
    const { a, ws } = presenceWorld();
    ws.deliver(okPresence("/a", "me"));
    ws.deliver(state("/a", { me: anon, b1: bob, a1: ann1 }));
    const seen = [];
    a.addEventListener("presence", (event) => seen.push([event.joins, event.leaves]));
    ws.deliver(diff("/a", { b1: { user: "bob", info: { name: "Bobby" } } }));
    assert.deepEqual(list(a), [
      [null, ["me", null]],
      ["bob", ["b1", { name: "Bobby" }]],
      ["ann", ["a1", { name: "Ann" }]],
    ]);
    assert.deepEqual(seen.pop(), [[{ clientId: "b1", user: "bob", info: { name: "Bobby" } }], []]);
    // The state and diffs overlap by design: a join repeating what is known, a leave of a
    // client never known (or gone already) change nothing.
    ws.deliver(diff("/a", { a1: ann1 }, { ghost: anon }));
    ws.deliver(diff("/a", {}, {}));
    assert.deepEqual(seen, []);
    // A client whose user changes moves to that user's entry.
    ws.deliver(diff("/a", { me: { user: "ann", info: { signed: "in" } } }));
    assert.deepEqual(list(a), [
      ["bob", ["b1", { name: "Bobby" }]],
      ["ann", ["a1", { name: "Ann" }], ["me", { signed: "in" }]],
    ]);
    assert.deepEqual(seen.pop(), [[{ clientId: "me", user: "ann", info: { signed: "in" } }], []]);
    // Joins apply before leaves: a client in both is gone, reported as it was known.
    ws.deliver(diff("/a", { b1: bob, x: anon }, { b1: bob, x: anon }));
    assert.deepEqual(seen.pop(), [[], [{ clientId: "b1", user: "bob", info: { name: "Bobby" } }]]);
    assert.deepEqual(list(a).map(([user]) => user), ["ann"]);
  });

  test("after a reconnect the new state replaces the list; the event reports what changed", () => {
    const { w, a, ws } = presenceWorld();
    ws.deliver(okPresence("/a", "old-me"));
    ws.deliver(state("/a", { "old-me": ann1, b1: bob, gone: anon, changes: anon }));
    const again = reconnect(w);
    // While reconnecting: the last list known, and the id it holds for this client.
    assert.equal(a.readyState, MultiplexWebSocket.CONNECTING);
    assert.equal(a.clientId, "old-me");
    assert.equal(a.presence.length, 4);
    const seen = [];
    a.addEventListener("presence", (event) => seen.push([event.joins, event.leaves]));
    again.deliver(okPresence("/a", "new-me"));
    assert.equal(a.clientId, "new-me");
    again.deliver(state("/a", { b1: bob, changes: { user: "cy", info: 1 }, "new-me": ann1, n1: anon }));
    assert.deepEqual(seen, [
      [
        [
          { clientId: "changes", user: "cy", info: 1 },
          { clientId: "new-me", user: "ann", info: { name: "Ann" } },
          { clientId: "n1", user: null, info: null },
        ],
        [
          { clientId: "old-me", user: "ann", info: { name: "Ann" } },
          { clientId: "gone", user: null, info: null },
        ],
      ],
    ]);
    // Who stayed keeps their place, Ann too (her new id joins her entry before the old one
    // leaves it); the new ones follow, in the state's order.
    assert.deepEqual(list(a), [
      ["ann", ["new-me", { name: "Ann" }]],
      ["bob", ["b1", { name: "Bob" }]],
      ["cy", ["changes", 1]],
      [null, ["n1", null]],
    ]);
    assert.deepEqual(a.events, [
      "open",
      "subscribed",
      "presence:+old-me,+b1,+gone,+changes",
      "open",
      "subscribed",
      "presence:+changes,+new-me,+n1,-old-me,-gone",
    ]);
    // A state equal to the list changes nothing, but still says that the list is current.
    const third = reconnect(w);
    third.deliver(okPresence("/a", "new-me"));
    third.deliver(state("/a", { b1: bob, changes: { user: "cy", info: 1 }, "new-me": ann1, n1: anon }));
    assert.deepEqual(seen.at(-1), [[], []]);
    assert.equal(list(a).length, 4);
  });

  test("the first state fires presence even when empty (as wsroute sends it: own join follows)", () => {
    const { a, ws } = presenceWorld();
    ws.deliver(okPresence("/a", "me"));
    ws.deliver(state("/a", {}));
    assert.deepEqual(a.presence, []);
    ws.deliver(diff("/a", { me: anon }));
    assert.deepEqual(list(a), [[null, ["me", null]]]);
    assert.deepEqual(a.events, ["open", "subscribed", "presence:", "presence:+me"]);
  });

  test("order: open, subscribed, presence, then messages; presence frames are never messages", () => {
    const { a, b, ws } = presenceWorld();
    const calls = [];
    a.onpresence = function (event) {
      calls.push([this === a, event.type, this.clientId, this.presence.length]);
    };
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta,positions,presence,client=me,epoch=E,offset=4,recovered=false"));
    ws.deliver(state("/a", { me: ann1 }));
    ws.deliver(`/a${S}offset=5${S}live`);
    ws.deliver(diff("/a", { b1: bob }));
    ws.deliver(`/a${S}${S}for me`);
    ws.deliver(encodeBinary("/a", new TextEncoder().encode(`presence=diff${S}{"joins":{},"leaves":{"b1":{}}}`)).buffer);
    ws.deliver(`/a${S}presence=later-kind${S}{}`); // a kind this client does not know: ignored
    assert.deepEqual(a.events, [
      "open",
      "subscribed",
      "presence:+me",
      "message:live",
      "presence:+b1",
      "message:for me",
      "presence:-b1",
    ]);
    assert.deepEqual(calls, [
      [true, "presence", "me", 1],
      [true, "presence", "me", 2],
      [true, "presence", "me", 1],
    ]);
    // Presence frames do not move the stream position either.
    assert.deepEqual(a.position, { epoch: "E", offset: 5 });
    assert.deepEqual(b.events, []);
  });

  test("a topic without presence granted: no client id, an empty list, no event", () => {
    const { w, a, b, ws } = presenceWorld();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta,positions,epoch=E,offset=0"));
    ws.deliver(encodeOk("SUBSCRIBE", "/b", "meta,client=ignored")); // a client id without presence
    // Never sent there; were it, the item is unknown to this subscription and ignored.
    ws.deliver(state("/a", { x: anon }));
    assert.equal(a.clientId, null);
    assert.equal(b.clientId, null);
    assert.deepEqual(a.presence, []);
    assert.deepEqual(b.presence, []);
    assert.deepEqual(a.events, ["open", "subscribed", `message:${JSON.stringify({ x: anon })}`]);
    assert.deepEqual(b.events, ["open", "subscribed"]);
    // Nor without extensions: no metadata, so no presence frames; all of it is payload.
    const plain = world(); // extensions: false
    const c = withPresence(plain.open("/c"));
    plain.sockets[0].accept();
    plain.sockets[0].deliver(`/c${S}presence=state${S}{}`);
    assert.deepEqual(c.events, ["open", "subscribed", `message:presence=state${S}{}`]);
    assert.deepEqual([c.clientId, c.presence], [null, []]);
    assert.equal(w.sockets.length, 1);
  });

  test("presence revoked on a resubscription: everyone leaves, right after subscribed", () => {
    const { w, a, ws } = presenceWorld();
    ws.deliver(okPresence("/a", "me"));
    ws.deliver(state("/a", { me: ann1, b1: bob }));
    const again = reconnect(w);
    again.deliver(encodeOk("SUBSCRIBE", "/a", "meta")); // say, the app changed meanwhile
    ws.deliver(`/a${S}${S}stale socket`); // the old socket is not listened to
    again.deliver(`/a${S}${S}hello`);
    assert.deepEqual(a.events.slice(3), ["open", "subscribed", "presence:-me,-b1", "message:hello"]);
    assert.deepEqual([a.clientId, a.presence], [null, []]);
  });

  test("the list is frozen, the same array until it changes; info and events are frozen too", () => {
    const { a, ws } = presenceWorld();
    ws.deliver(okPresence("/a", "me"));
    let event;
    a.addEventListener("presence", (e) => (event = e));
    ws.deliver(state("/a", { me: { user: "ann", info: { deep: { list: [1, { x: 2 }] } } } }));
    const first = a.presence;
    assert.equal(a.presence, first);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first[0]) && Object.isFrozen(first[0].clients));
    assert.ok(Object.isFrozen(first[0].clients[0]));
    assert.ok(Object.isFrozen(first[0].clients[0].info.deep.list[1]));
    assert.throws(() => first.push({}), TypeError);
    assert.throws(() => {
      first[0].clients[0].info.deep.list[1].x = 3;
    }, TypeError);
    assert.ok(Object.isFrozen(event.joins) && Object.isFrozen(event.leaves) && Object.isFrozen(event.joins[0]));
    ws.deliver(diff("/a", { b1: bob }));
    assert.notEqual(a.presence, first);
    assert.deepEqual(first.length, 1); // the old array is as it was
    assert.deepEqual(list(a)[0], ["ann", ["me", { deep: { list: [1, { x: 2 }] } }]]);
  });

  test("a malformed presence payload is dropped; a malformed entry costs only itself", () => {
    const { a, ws } = presenceWorld();
    ws.deliver(okPresence("/a", "me"));
    ws.deliver(`/a${S}presence=state${S}not json`);
    ws.deliver(`/a${S}presence=state${S}[1,2]`);
    ws.deliver(`/a${S}presence=diff${S}{"joins":[],"leaves":{}}`);
    ws.deliver(`/a${S}presence=diff${S}null`);
    assert.deepEqual(a.events, ["open", "subscribed"]);
    ws.deliver(state("/a", { me: { user: 7 }, bad: "x", worse: null, ok: bob }));
    assert.deepEqual(list(a), [
      [null, ["me", null]],
      ["bob", ["ok", { name: "Bob" }]],
    ]);
    ws.deliver(`/a${S}presence=diff${S}{"leaves":{"ok":1}}`); // no joins: none
    assert.deepEqual(list(a), [[null, ["me", null]]]);
    assert.deepEqual(a.events.slice(2), ["presence:+me,+ok", "presence:-ok"]);
  });

  test("closing the topic forgets the list and the client id, without an event", () => {
    const { a, b, ws } = presenceWorld();
    ws.deliver(okPresence("/a", "me"));
    ws.deliver(okPresence("/b", "me-b"));
    ws.deliver(state("/a", { me: ann1 }));
    ws.deliver(state("/b", { "me-b": ann1 }));
    a.close();
    ws.deliver(diff("/a", { late: bob })); // after close(): not delivered
    ws.deliver(encodeOk("UNSUBSCRIBE", "/a"));
    assert.deepEqual([a.clientId, a.presence], [null, []]);
    assert.deepEqual(a.events, ["open", "subscribed", "presence:+me", "close:1000::true"]);
    ws.deliver(encodeServerUnsubscribe("/b", 4000, "bye"));
    assert.deepEqual([b.clientId, b.presence], [null, []]);
    assert.deepEqual(b.events.at(-1), "close:4000:bye:true");
  });
});

describe("requests that time out", () => {
  test("a request that timed out while CONNECTING is not sent once the topic opens", async () => {
    // The user asks while offline, gets `timeout`, and (as the docs invite) decides what to do:
    // say, asks again. The first request must not reach the server after it was given up on,
    // or the handler runs twice (a double purchase, a double post).
    const w = world({ extensions: true });
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    ws.drop(1006); // the connection is lost
    assert.equal(a.readyState, MultiplexWebSocket.CONNECTING);
    const buy = a.request("buy 1", { timeout: 5000 });
    assert.deepEqual(w.tick(5000), [5000]); // still offline when the request times out
    await assert.rejects(buy, (error) => error instanceof RequestError && error.kind === "timeout");
    const buffered = a.bufferedAmount;
    w.tick(); // reconnect
    const again = w.sockets[1];
    again.accept();
    again.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    assert.deepEqual(again.take(), [], "the timed-out request must not be sent");
    assert.equal(buffered, 0, "a request given up on is no longer buffered");
  });

  test("a timeout given as a numeric string is still a timeout", async () => {
    const w = world({ extensions: true });
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    const asked = a.request("ping", { timeout: "250" });
    assert.deepEqual(w.tick(250), [250]);
    await assert.rejects(asked, (error) => error instanceof RequestError && error.kind === "timeout");
  });

  test("request({ timeout: Infinity }) waits instead of timing out at once", async () => {
    // Real timers (the defaults): setTimeout clamps Infinity, and anything over 2**31 - 1 ms,
    // to about 0, in browsers as in Node. A caller asking for "no timeout" gets an immediate
    // rejection "no reply within Infinity ms".
    const w = world({ extensions: true, setTimeout: undefined, clearTimeout: undefined });
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    const settled = [];
    const noTimeout = a.request("slow", { timeout: Infinity });
    noTimeout.then(
      () => settled.push("resolved"),
      (error) => settled.push(`${error.kind}: ${error.reason}`),
    );
    const longTimeout = a.request("slower", { timeout: 30 * 24 * 3600 * 1000 }); // 30 days
    longTimeout.then(
      () => settled.push("resolved"),
      (error) => settled.push(`${error.kind}: ${error.reason}`),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const pending = [...settled];
    a.close(); // rejects both as closed, clearing their timers
    ws.deliver(encodeOk("UNSUBSCRIBE", "/a")); // and the reply's timer: nothing left running
    await Promise.allSettled([noTimeout, longTimeout]);
    assert.deepEqual(pending, [], "neither request may settle within 50 ms");
  });
});

describe("a request it cannot send", () => {
  test("request(blob) rejects with the TypeError instead of throwing synchronously", async () => {
    const w = world({ extensions: true });
    const a = w.open("/a");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    ws.take();
    let asked;
    assert.doesNotThrow(() => {
      asked = a.request(new Blob(["x"]));
    });
    await assert.rejects(asked, (error) => error instanceof TypeError && /Blob/.test(error.message));
    assert.deepEqual(ws.take(), [], "nothing is sent for it");
  });
});

describe("a server UNSUBSCRIBE against a reopened topic", () => {
  test("a server close of a subscription the user already dropped does not close its reopened twin", async () => {
    const w = world({ extensions: true });
    const keep = w.open("/keep");
    const ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/keep", "meta"));
    const first = w.open("/room");
    assert.deepEqual(ws.take(), [sub("/room", { meta: "", positions: "", presence: "" })]);
    first.close(); // closed while its SUBSCRIBE is pending
    await flushMicrotasks();
    ws.deliver(encodeOk("SUBSCRIBE", "/room", "meta")); // the OK: the client undoes it
    assert.deepEqual(ws.take(), [unsub("/room")]);
    const second = w.open("/room"); // the user comes back to the room (same socket)
    assert.equal(second.socket, first.socket);
    // The server's join for the FIRST subscription fails (or a kick, or its rate limit),
    // before the server reads the client's UNSUBSCRIBE:
    ws.deliver(encodeServerUnsubscribe("/room", 1011, "Internal Error"));
    // ... then it answers that UNSUBSCRIBE: the topic is gone already.
    ws.deliver(`${S}ERR${S}Not Subscribed${S}UNSUBSCRIBE${S}/room`);
    // The second topic never subscribed: it must not be closed, it must SUBSCRIBE.
    assert.deepEqual(second.events, [], "the reopened topic was closed by the first one's close");
    assert.deepEqual(ws.take(), [sub("/room", { meta: "", positions: "", presence: "" })]);
    ws.deliver(encodeOk("SUBSCRIBE", "/room", "meta"));
    assert.deepEqual(second.events, ["open"]);
    assert.deepEqual(keep.events, ["open"]);
  });
});

describe("the recovery position", () => {
  const asked = { meta: "", positions: "", presence: "" };
  test("an OK without a position (stream unavailable) keeps the position to recover from", () => {
    // Redis is down when the topic resubscribes: `positions` granted without epoch/offset, and
    // recovered=false. The client forgets its position, so after the next drop it resubscribes
    // without `since`: `subscribed` then says wasRecovering=false, and the js-client.md pattern
    // `if (event.wasRecovering && !event.recovered) reload()` never reloads the gap.
    const w = world({ extensions: true });
    const a = w.open("/a");
    const b = w.open("/b");
    const seen = [];
    b.addEventListener("subscribed", (event) => seen.push([event.wasRecovering, event.recovered]));
    let ws = w.sockets[0];
    ws.accept();
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    ws.deliver(encodeOk("SUBSCRIBE", "/b", "meta,positions,epoch=E,offset=7"));
    ws.deliver(`/b${S}offset=8${S}hello`);
    // First drop: recovery attempted, the stream cannot be read.
    ws.drop(1006);
    w.tick();
    ws = w.sockets[1];
    ws.accept();
    assert.deepEqual(ws.take(), [sub("/b", { ...asked, since: "E:8" })]);
    ws.deliver(encodeOk("SUBSCRIBE", "/a", "meta"));
    ws.deliver(encodeOk("SUBSCRIBE", "/b", "meta,positions,recovered=false"));
    // Second drop before any publication arrives.
    ws.drop(1006);
    w.tick();
    ws = w.sockets[2];
    ws.accept();
    const frames = ws.take();
    assert.deepEqual(frames, [sub("/b", { ...asked, since: "E:8" })], "the second resubscription lost its since");
    assert.deepEqual(seen, [[false, false], [true, false]]);
  });
});
