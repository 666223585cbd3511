/**
 * wsroute browser client for the `rocket-multiplex` WebSocket sub-protocol.
 *
 * Many topics, one socket per origin. Separator S = U+00B7 MIDDLE DOT:
 *   data, both directions:         TOPIC S PAYLOAD   (text or binary; topic prefix UTF-8)
 *   control, text only, <= 512 B:  S ACTION (S PARAM)* [S]
 *   client: SUBSCRIBE topic, UNSUBSCRIBE topic [code [reason]]; server: OK, ERR, INVALID, UNSUBSCRIBE
 *
 *   import { MultiplexWebSocket } from "/wsroute/multiplex.js";
 *   const room = new MultiplexWebSocket("/rooms/lobby");   // used like a WebSocket
 *   room.onmessage = (event) => console.log(event.data);
 *   room.send("hello");
 *
 * A dependency-free ES module: no build step. The pure codec functions are exported too; they
 * follow the same rules as wsroute/multiplex/codec.py and are tested against the same fixtures
 * (tests/fixtures/multiplex_frames.json).
 */

/** The separator, U+00B7 MIDDLE DOT; a URL cannot contain it unescaped. */
export const SEP = "\u00b7";
/** The `Sec-WebSocket-Protocol` token the physical socket offers. */
export const SUBPROTOCOL = "rocket-multiplex";
/** Longest topic, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 100;
/** Longest control frame a client may send, in UTF-8 bytes. */
export const MAX_CONTROL_BYTES = 512;
/** Physical close codes after which the client does not reconnect (overridable per socket). */
export const DEFAULT_STOP_CODES = Object.freeze([1008, 3000, 3003, 4401, 4403]);

/** REASON fields of `ERR` and `INVALID` replies, spelled exactly as on the wire. */
export const Reason = Object.freeze({
  ALREADY_SUBSCRIBED: "Already Subscribed",
  NOT_SUBSCRIBED: "Not Subscribed",
  TOO_MANY_TOPICS: "Too Many Topics",
  INVALID_TOPIC: "Invalid Topic",
  NO_CONTROL_CHARACTER: "No Control Character",
  CONTROL_TOO_LONG: "Control Message Too Long",
  INVALID_CONTROL: "Invalid Control Message",
  INVALID_UTF8: "Invalid Utf-8",
});

/** A malformed frame; `reason` is one of the `INVALID` reasons of {@link Reason}. */
export class ProtocolError extends Error {
  /**
   * @param {string} reason
   * @param {string} [detail] what exactly was wrong (for logs, not for the wire)
   */
  constructor(reason, detail = "") {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = "ProtocolError";
    this.reason = reason;
    this.detail = detail;
  }
}

// ------------------------------------------------------------------------------------ codec

const SEP_B0 = 0xc2;
const SEP_B1 = 0xb7;
const utf8Encoder = new TextEncoder();
// fatal: a topic prefix that is not UTF-8 is an error, not U+FFFD; ignoreBOM: keep a leading
// U+FEFF in the topic, as Python's decoder does, instead of silently stripping it.
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
// A topic of <= 100 UTF-8 bytes has <= 100 UTF-16 code units, so a separator ending a valid
// topic starts at index <= 100: searching that window first spares a second scan of a large
// payload on the common path.
const TEXT_WINDOW = MAX_TOPIC_BYTES + SEP.length;
const BYTES_WINDOW = MAX_TOPIC_BYTES + 2;
// Spelled out rather than \s, whose set (U+FEFF) differs from Python's; codec.py uses this set.
const FORBIDDEN_IN_TOPIC =
  /[\u0000-\u0020\u007f-\u009f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
// Actions whose parameter at this index is the rest of the frame (a close reason may hold S).
const REST_PARAM = { UNSUBSCRIBE: 2 };

/**
 * UTF-8 length of a string; a lone surrogate counts 3 bytes (the U+FFFD a browser sends).
 * @param {string} text
 * @returns {number}
 */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

function missingSeparator(later) {
  // A separator only past the window means a topic over MAX_TOPIC_BYTES: never subscribed.
  return later
    ? new ProtocolError(Reason.NOT_SUBSCRIBED, `topic over ${MAX_TOPIC_BYTES} bytes`)
    : new ProtocolError(Reason.NO_CONTROL_CHARACTER, "no separator in the frame");
}

function invalid(detail) {
  return new ProtocolError(Reason.INVALID_CONTROL, detail);
}

/** `[head, found, tail]` around the first separator, like Python's str.partition. */
function partition(text) {
  const i = text.indexOf(SEP);
  return i < 0 ? [text, false, ""] : [text.slice(0, i), true, text.slice(i + SEP.length)];
}

/** Split at most `max` times, keeping the remainder whole (unlike `split(sep, n)`, which drops it). */
function splitFields(text, max = Infinity) {
  const fields = [];
  let start = 0;
  while (fields.length < max) {
    const i = text.indexOf(SEP, start);
    if (i < 0) break;
    fields.push(text.slice(start, i));
    start = i + SEP.length;
  }
  fields.push(text.slice(start));
  return fields;
}

function stripTrailing(body) {
  return body.endsWith(SEP) ? body.slice(0, -SEP.length) : body;
}

function params(action, tail) {
  const restAt = Object.hasOwn(REST_PARAM, action) ? REST_PARAM[action] : Infinity;
  return splitFields(tail, restAt);
}

function parseCode(text, lowestAppCode) {
  // Exactly four ASCII digits, as codec.py: Number() would also take " 1e3", "0x3e8", ...
  if (/^[0-9]{4}$/.test(text)) {
    const code = Number(text);
    if (code === 1000 || (code >= lowestAppCode && code <= 4999)) return code;
  }
  throw invalid(`invalid close code ${JSON.stringify(text)}`);
}

function parseTextData(text) {
  const head = text.length > TEXT_WINDOW ? text.slice(0, TEXT_WINDOW) : text;
  const i = head.indexOf(SEP);
  if (i < 0) throw missingSeparator(text.indexOf(SEP, TEXT_WINDOW) >= 0);
  const topic = text.slice(0, i);
  // At most 3 UTF-8 bytes per UTF-16 code unit: short topics cannot be over the limit.
  if (topic.length * 3 > MAX_TOPIC_BYTES && utf8Length(topic) > MAX_TOPIC_BYTES) {
    throw missingSeparator(true);
  }
  return { type: "data", topic, text: text.slice(i + SEP.length), data: null };
}

function findSep(bytes, from, to) {
  for (let i = bytes.indexOf(SEP_B0, from); i >= 0 && i + 1 < to; i = bytes.indexOf(SEP_B0, i + 1)) {
    if (bytes[i + 1] === SEP_B1) return i;
  }
  return -1;
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError("a frame is a string, an ArrayBuffer or an ArrayBuffer view");
}

function parseBinary(data) {
  const bytes = toBytes(data);
  if (bytes.length >= 2 && bytes[0] === SEP_B0 && bytes[1] === SEP_B1) {
    throw invalid("control frames must be text frames");
  }
  const i = findSep(bytes, 0, Math.min(bytes.length, BYTES_WINDOW));
  if (i < 0) throw missingSeparator(findSep(bytes, MAX_TOPIC_BYTES + 1, bytes.length) >= 0);
  let topic;
  try {
    topic = strictDecoder.decode(bytes.subarray(0, i));
  } catch {
    throw new ProtocolError(Reason.INVALID_UTF8, "topic prefix is not UTF-8");
  }
  return { type: "data", topic, text: null, data: bytes.subarray(i + 2) };
}

function parseClientControl(text) {
  if (text.length > MAX_CONTROL_BYTES || utf8Length(text) > MAX_CONTROL_BYTES) {
    throw new ProtocolError(Reason.CONTROL_TOO_LONG, `over ${MAX_CONTROL_BYTES} bytes`);
  }
  let [action, found, tail] = partition(stripTrailing(text.slice(SEP.length)));
  if (action === "SUBSCRIBE") {
    if (!found || tail.includes(SEP)) throw invalid("SUBSCRIBE takes exactly one topic");
    return { type: "subscribe", topic: tail };
  }
  if (action === "UNSUBSCRIBE") {
    if (!found) throw invalid("UNSUBSCRIBE needs a topic");
    let topic;
    [topic, found, tail] = partition(tail);
    if (!found) return { type: "unsubscribe", topic, code: null, reason: null };
    const [codeText, hasReason, reason] = partition(tail);
    // Codes a browser's WebSocket.close() accepts.
    const code = parseCode(codeText, 3000);
    return { type: "unsubscribe", topic, code, reason: hasReason ? reason : null };
  }
  throw invalid(`unknown client action ${JSON.stringify(action)}`);
}

function parseServerControl(text) {
  // No size limit: an ERR echoes the client's parameters and may be a few bytes over 512.
  let [kind, found, tail] = partition(stripTrailing(text.slice(SEP.length)));
  if (!found) throw invalid(`server reply ${JSON.stringify(kind)} without fields`);
  if (kind === "OK") {
    const [action, hasParams, rest] = partition(tail);
    return { type: "ok", action, params: hasParams ? params(action, rest) : [] };
  }
  if (kind === "ERR") {
    let reason, action;
    [reason, found, tail] = partition(tail);
    if (!found) throw invalid("ERR needs a reason and an action");
    [action, found, tail] = partition(tail);
    return { type: "err", reason, action, params: found ? params(action, tail) : [] };
  }
  if (kind === "INVALID") {
    if (tail.includes(SEP)) throw invalid("INVALID takes exactly one reason");
    return { type: "invalid", reason: tail };
  }
  if (kind === "UNSUBSCRIBE") {
    let topic;
    [topic, found, tail] = partition(tail);
    if (!found) throw invalid("server UNSUBSCRIBE needs a topic and a code");
    const [codeText, , reason] = partition(tail);
    return { type: "server_unsubscribe", topic, code: parseCode(codeText, 1000), reason };
  }
  throw invalid(`unknown server reply ${JSON.stringify(kind)}`);
}

/**
 * Parse a frame received from the server (a string, or binary data).
 * @param {string | ArrayBuffer | ArrayBufferView} frame
 * @returns {import("./multiplex.js").ServerFrame}
 * @throws {ProtocolError} for a malformed frame
 */
export function parseServerFrame(frame) {
  if (typeof frame !== "string") return parseBinary(frame);
  return frame.startsWith(SEP) ? parseServerControl(frame) : parseTextData(frame);
}

/**
 * Parse a frame a client sent (what the server does; used by tests and fake servers).
 * @param {string | ArrayBuffer | ArrayBufferView} frame
 * @returns {import("./multiplex.js").ClientFrame}
 * @throws {ProtocolError} for a malformed frame
 */
export function parseClientFrame(frame) {
  if (typeof frame !== "string") return parseBinary(frame);
  return frame.startsWith(SEP) ? parseClientControl(frame) : parseTextData(frame);
}

/**
 * Why a topic may not be subscribed, or `null` if it may: origin-form (`/path[?query]`, not
 * `//`, no `#`, no whitespace or control characters), at most 100 UTF-8 bytes, no raw `·`.
 * @param {string} topic
 * @returns {string | null}
 */
export function invalidTopicReason(topic) {
  if (!topic) return "empty";
  try {
    encodeURIComponent(topic); // throws URIError on a lone surrogate
  } catch {
    return "contains a lone surrogate";
  }
  const size = utf8Length(topic);
  if (size > MAX_TOPIC_BYTES) return `${size} bytes, over the ${MAX_TOPIC_BYTES}-byte limit`;
  if (topic.includes(SEP)) return `contains the separator ${SEP}`;
  if (!topic.startsWith("/")) return "not origin-form: must start with '/'";
  if (topic.startsWith("//")) return "not origin-form: '//' would start an authority";
  if (topic.includes("#")) return "contains '#': a fragment is never sent to a server";
  if (FORBIDDEN_IN_TOPIC.test(topic)) return "contains whitespace or a control character";
  return null;
}

function checkPrefix(topic) {
  // An empty topic would make the frame a control frame; a separator would move the split.
  if (!topic || topic.includes(SEP)) throw new TypeError(`invalid topic ${JSON.stringify(topic)}`);
}

function control(fields, restLast = false) {
  const checked = restLast ? fields.slice(0, -1) : fields;
  for (const field of checked) {
    if (field.includes(SEP)) {
      throw new TypeError(`control field ${JSON.stringify(field)} contains ${SEP}`);
    }
  }
  const last = fields[fields.length - 1];
  // The parser drops one trailing separator, so give it one to drop.
  return SEP + fields.join(SEP) + (last === "" || last.endsWith(SEP) ? SEP : "");
}

function replyRestLast(action, replyParams) {
  if (!Object.hasOwn(REST_PARAM, action)) return false;
  const restAt = REST_PARAM[action];
  if (replyParams.length > restAt + 1) {
    throw new TypeError(`${action} takes at most ${restAt + 1} parameters`);
  }
  return replyParams.length === restAt + 1;
}

/**
 * Text data frame `topic·payload`.
 * @param {string} topic
 * @param {string} payload
 * @returns {string}
 */
export function encodeText(topic, payload) {
  checkPrefix(topic);
  return topic + SEP + payload;
}

/**
 * Binary data frame: UTF-8 topic, separator bytes, payload.
 * @param {string} topic
 * @param {ArrayBuffer | ArrayBufferView} payload
 * @returns {Uint8Array}
 */
export function encodeBinary(topic, payload) {
  checkPrefix(topic);
  const prefix = utf8Encoder.encode(topic + SEP);
  const body = toBytes(payload);
  const frame = new Uint8Array(prefix.length + body.length);
  frame.set(prefix, 0);
  frame.set(body, prefix.length);
  return frame;
}

/**
 * `·SUBSCRIBE·topic`.
 * @param {string} topic
 * @returns {string}
 */
export function encodeSubscribe(topic) {
  return control(["SUBSCRIBE", topic]);
}

/**
 * `·UNSUBSCRIBE·topic[·code[·reason]]`; the reason may contain `·`.
 * @param {string} topic
 * @param {number | null} [code]
 * @param {string | null} [reason]
 * @returns {string}
 */
export function encodeUnsubscribe(topic, code = null, reason = null) {
  if (code === null || code === undefined) {
    if (reason !== null && reason !== undefined) {
      throw new TypeError("an UNSUBSCRIBE reason needs a code");
    }
    return control(["UNSUBSCRIBE", topic]);
  }
  if (reason === null || reason === undefined) return control(["UNSUBSCRIBE", topic, String(code)]);
  return control(["UNSUBSCRIBE", topic, String(code), reason], true);
}

/**
 * `·OK·ACTION·PARAMS…` (server reply; for tests and fake servers).
 * @param {string} action
 * @param {...string} replyParams
 * @returns {string}
 */
export function encodeOk(action, ...replyParams) {
  return control(["OK", action, ...replyParams], replyRestLast(action, replyParams));
}

/**
 * `·ERR·REASON·ACTION·PARAMS…` (server reply; for tests and fake servers).
 * @param {string} reason
 * @param {string} action
 * @param {...string} replyParams
 * @returns {string}
 */
export function encodeErr(reason, action, ...replyParams) {
  return control(["ERR", reason, action, ...replyParams], replyRestLast(action, replyParams));
}

/**
 * `·INVALID·REASON` (server reply; for tests and fake servers).
 * @param {string} reason
 * @returns {string}
 */
export function encodeInvalid(reason) {
  return control(["INVALID", reason]);
}

/**
 * `·UNSUBSCRIBE·topic·code·reason` (server closes one topic; for tests and fake servers).
 * @param {string} topic
 * @param {number} code 1000-4999
 * @param {string} reason may contain `·`; left out when empty
 * @returns {string}
 */
export function encodeServerUnsubscribe(topic, code, reason) {
  if (!Number.isInteger(code) || code < 1000 || code > 4999) {
    throw new TypeError(`close code ${code} is outside 1000-4999`);
  }
  if (!reason) return control(["UNSUBSCRIBE", topic, String(code)]);
  return control(["UNSUBSCRIBE", topic, String(code), reason], true);
}

/**
 * Close code reported for a topic whose SUBSCRIBE got `ERR reason`: an HTTP status reason
 * (`"403 Forbidden"`) becomes 4000 + status (4403), as the 44xx convention the default stop
 * codes use; any other reason (`Too Many Topics`, `Invalid Topic`, ...) becomes 1008.
 * @param {string} reason
 * @returns {number}
 */
export function closeCodeForError(reason) {
  const match = /^([45][0-9]{2})(?: |$)/.exec(reason);
  return match ? 4000 + Number(match[1]) : 1008;
}

// ------------------------------------------------------------------------------------ client

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** origin -> MultiplexSocket[]: normally one; a second only for a topic already open on the first. */
const registry = new Map();

function makeMessageEvent(data, origin) {
  if (typeof MessageEvent === "function") return new MessageEvent("message", { data, origin });
  const event = new Event("message");
  Object.defineProperties(event, { data: { value: data }, origin: { value: origin } });
  return event;
}

function makeCloseEvent(code, reason, wasClean) {
  if (typeof CloseEvent === "function") return new CloseEvent("close", { code, reason, wasClean });
  const event = new Event("close");
  Object.defineProperties(event, {
    code: { value: code },
    reason: { value: reason },
    wasClean: { value: wasClean },
  });
  return event;
}

function resolveUrl(url) {
  let parsed;
  try {
    parsed = new URL(String(url), globalThis.location?.href);
  } catch {
    throw new DOMException(`invalid WebSocket URL ${JSON.stringify(String(url))}`, "SyntaxError");
  }
  // Browsers accept http(s) URLs for WebSockets too; a relative path resolves to them.
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new DOMException(`not a WebSocket URL: ${parsed.href}`, "SyntaxError");
  }
  parsed.hash = ""; // never sent to a server, as browsers do
  return parsed;
}

/**
 * One physical `WebSocket` speaking rocket-multiplex, shared by every topic of one origin;
 * it subscribes, unsubscribes, routes frames and reconnects. Created and discarded by
 * {@link MultiplexWebSocket}; exported for inspection and tests.
 */
export class MultiplexSocket extends EventTarget {
  /**
   * @param {string} origin e.g. `"wss://example.com"`
   * @param {import("./multiplex.js").MultiplexOptions} [options]
   */
  constructor(origin, options = {}) {
    super();
    /** The origin all its topics share. */
    this.origin = origin;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== "function") {
      throw new TypeError("no WebSocket implementation: pass options.WebSocket");
    }
    this._random = options.random ?? Math.random;
    this._setTimeout = options.setTimeout ?? ((callback, ms) => setTimeout(callback, ms));
    this._clearTimeout = options.clearTimeout ?? ((id) => clearTimeout(id));
    this._backoffBase = options.backoffBase ?? 250;
    this._backoffCap = options.backoffCap ?? 10_000;
    this._stopCodes = new Set(options.stopCodes ?? DEFAULT_STOP_CODES);
    this._state = "idle";
    /** Failed connections in a row; reset once a connection opens. */
    this.attempt = 0;
    this._ws = null;
    this._timer = null;
    this._connectTopic = null;
    // Topics the user wants, in the order they are tried as the connect URL.
    this._wanted = new Map();
    // What the server knows: topic -> "subscribing" | "subscribed" | "unsubscribing". Kept apart
    // from _wanted so that a reply always finds the state its request left, whatever the user
    // did in between (close while subscribing, reopen while unsubscribing).
    this._server = new Map();
    // User closes waiting for the server's OK: topic -> { target, code, reason }.
    this._closing = new Map();
  }

  /**
   * `"idle" | "connecting" | "open" | "waiting" | "closed"`; waiting = backoff before a
   * reconnect. Each change fires a `statechange` event on the socket (soon after, from a
   * microtask), whose `state` is the state it changed to.
   */
  get state() {
    return this._state;
  }

  _setState(state) {
    if (state === this._state) return;
    this._state = state;
    // From a microtask, like the browser's own events from a task: a listener never runs in
    // the middle of a step of this state machine (it may open or close topics).
    const event = new Event("statechange");
    event.state = state;
    queueMicrotask(() => this.dispatchEvent(event));
  }

  /** Topics wanted on this socket, the next connect URL's first. @returns {string[]} */
  get topics() {
    return [...this._wanted.keys()];
  }

  /** The physical `WebSocket` now in use, if any. */
  get webSocket() {
    return this._ws;
  }

  static _acquire(target, origin, options) {
    const sockets = registry.get(origin) ?? [];
    let socket = sockets.find((candidate) => !candidate._wanted.has(target._topic));
    if (!socket) {
      socket = new MultiplexSocket(origin, options);
      sockets.push(socket);
      registry.set(origin, sockets);
    }
    socket._add(target);
    return socket;
  }

  _add(target) {
    this._wanted.set(target._topic, target);
    if (this.state === "idle") this._connect(true);
    else this._reconcile(target._topic);
    // "connecting" and "waiting": every wanted topic is subscribed once the socket opens.
  }

  _connect(fromConstructor = false) {
    this._timer = null;
    const first = this._wanted.values().next().value;
    if (!first) {
      this._finish();
      return;
    }
    this._connectTopic = first._topic;
    this._setState("connecting");
    let ws;
    try {
      ws = new this._WebSocket(first.url, [SUBPROTOCOL]);
    } catch (error) {
      // Only a URL the browser refuses (or a CSP) gets here; retrying would not help.
      if (fromConstructor) {
        // Nobody listens yet: let `new MultiplexWebSocket()` throw, as `new WebSocket()` does.
        this._wanted.clear();
        this._finish();
        throw error;
      }
      this._stop(1006, String(error?.message ?? error), false, true);
      return;
    }
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (event) => this._onMessage(ws, event);
    ws.onclose = (event) => this._onClose(ws, event);
    ws.onerror = () => {}; // a close event always follows; that is where we act
    this._ws = ws;
  }

  _send(frame) {
    this._ws.send(frame);
  }

  /** Send whatever brings the server's view of `topic` one step closer to the user's. */
  _reconcile(topic) {
    if (this.state !== "open") return;
    const status = this._server.get(topic);
    if (this._wanted.has(topic)) {
      if (status === undefined) {
        this._server.set(topic, "subscribing");
        this._send(encodeSubscribe(topic));
      }
    } else if (status === "subscribed") {
      const request = this._closing.get(topic);
      this._server.set(topic, "unsubscribing");
      this._send(encodeUnsubscribe(topic, request?.code ?? null, request?.reason ?? null));
    }
    // "subscribing" / "unsubscribing": wait for the reply, which calls back here.
  }

  _onOpen(ws) {
    if (ws !== this._ws) return;
    this._setState("open");
    this.attempt = 0;
    const first = this._connectTopic;
    // The server subscribes the connect URL itself.
    this._server.set(first, "subscribed");
    for (const topic of [first, ...this._wanted.keys()]) this._reconcile(topic);
    this._wanted.get(first)?._open();
  }

  _onMessage(ws, event) {
    if (ws !== this._ws) return;
    let frame;
    try {
      frame = parseServerFrame(event.data);
    } catch (error) {
      if (error instanceof ProtocolError) return; // a server bug; nothing a topic can do about it
      throw error;
    }
    switch (frame.type) {
      case "data": {
        const target = this._wanted.get(frame.topic);
        if (target?.readyState === OPEN) target._message(frame);
        return;
      }
      case "ok":
        if (frame.action === "SUBSCRIBE") this._subscribed(frame.params[0]);
        else if (frame.action === "UNSUBSCRIBE") this._unsubscribed(frame.params[0]);
        return;
      case "err":
        if (frame.action === "SUBSCRIBE") this._refused(frame.params[0], frame.reason);
        // Not Subscribed: the topic is gone either way.
        else if (frame.action === "UNSUBSCRIBE") this._unsubscribed(frame.params[0]);
        return;
      case "server_unsubscribe":
        this._serverClosed(frame.topic, frame.code, frame.reason);
        return;
      default:
        return; // INVALID: the server refused a frame we sent; no topic to blame
    }
  }

  _subscribed(topic) {
    if (this._server.get(topic) !== "subscribing") return;
    this._server.set(topic, "subscribed");
    const target = this._wanted.get(topic);
    if (target) target._open();
    else this._reconcile(topic); // closed while subscribing: undo it now
  }

  _unsubscribed(topic) {
    if (this._server.get(topic) !== "unsubscribing") return;
    this._server.delete(topic);
    const request = this._closing.get(topic);
    this._closing.delete(topic);
    this._reconcile(topic); // reopened meanwhile: subscribe again
    this._maybeFinish();
    request?.target._closed(request.code ?? 1000, request.reason ?? "", true);
  }

  _refused(topic, reason) {
    if (this._server.get(topic) !== "subscribing") return;
    this._server.delete(topic);
    const target = this._wanted.get(topic);
    this._wanted.delete(topic); // no retry: not even after a reconnect
    this._maybeFinish();
    target?._fail(reason);
  }

  _serverClosed(topic, code, reason) {
    if (this._server.get(topic) === undefined) return;
    this._server.delete(topic);
    const request = this._closing.get(topic);
    let target;
    if (request) {
      this._closing.delete(topic);
      target = request.target;
    } else {
      target = this._wanted.get(topic);
      this._wanted.delete(topic);
    }
    this._reconcile(topic); // a reopened topic waiting for our UNSUBSCRIBE to finish
    this._maybeFinish();
    target?._closed(code, reason, true);
  }

  _onClose(ws, event) {
    if (ws !== this._ws) return;
    const wasOpen = this.state === "open";
    this._ws = null;
    this._server.clear();
    const { code = 1006, reason = "", wasClean = false } = event ?? {};
    if (this._stopCodes.has(code)) {
      this._stop(code, reason, wasClean, false);
      return;
    }
    const closing = [...this._closing.values()];
    this._closing.clear();
    for (const target of this._wanted.values()) target._lost();
    const first = this._connectTopic;
    if (!wasOpen && this._wanted.has(first)) {
      // A refused handshake (e.g. a guard on the connect URL) would otherwise block every other
      // topic forever: try the next one, and this one again by SUBSCRIBE, which reports the
      // server's real reason as ERR.
      const target = this._wanted.get(first);
      this._wanted.delete(first);
      this._wanted.set(first, target);
    }
    if (this._wanted.size === 0) this._finish();
    else {
      const ceiling = Math.min(this._backoffCap, this._backoffBase * 2 ** this.attempt);
      this.attempt += 1;
      this._setState("waiting");
      this._timer = this._setTimeout(() => this._connect(), this._random() * ceiling);
    }
    for (const request of closing) request.target._closed(1006, "", false);
  }

  /** The server said "do not come back" (or the socket cannot be built): close every topic. */
  _stop(code, reason, wasClean, withError) {
    const targets = [...this._closing.values()].map((request) => request.target);
    targets.push(...this._wanted.values());
    this._closing.clear();
    this._wanted.clear();
    this._finish();
    for (const target of targets) {
      if (withError) target.dispatchEvent(new Event("error"));
      target._closed(code, reason, wasClean);
    }
  }

  _maybeFinish() {
    if (this._wanted.size === 0 && this._closing.size === 0) this._finish();
  }

  /** Leave the registry first, so that a topic opened from an event handler gets a fresh socket. */
  _finish() {
    if (this.state === "closed") return;
    this._setState("closed");
    const sockets = registry.get(this.origin) ?? [];
    const index = sockets.indexOf(this);
    if (index >= 0) sockets.splice(index, 1);
    if (sockets.length === 0) registry.delete(this.origin);
    if (this._timer !== null) this._clearTimeout(this._timer);
    this._timer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      ws.close(1000);
    }
  }

  /** The user closed a topic that is not open: forget it. */
  _drop(target) {
    if (this._wanted.get(target._topic) !== target) return;
    this._wanted.delete(target._topic);
    this._reconcile(target._topic);
    this._maybeFinish();
  }

  /** The user closed an open topic: UNSUBSCRIBE, and report the close on the server's OK. */
  _unsubscribe(target, code, reason) {
    this._wanted.delete(target._topic);
    this._closing.set(target._topic, { target, code, reason });
    this._reconcile(target._topic);
  }
}

/**
 * One topic of a shared rocket-multiplex socket, used like a browser `WebSocket`.
 *
 * Differences from `WebSocket`, all deliberate: sends made while CONNECTING are buffered (and
 * flushed in order on open) instead of throwing; a lost connection does not close the topic but
 * takes it back to CONNECTING while the shared socket reconnects; `send(Blob)` is refused
 * (reading a Blob is asynchronous and would reorder frames); `protocol` is always `""`.
 */
export class MultiplexWebSocket extends EventTarget {
  /**
   * @param {string | URL} url `ws:`/`wss:` URL, or a URL relative to `location` in a browser.
   *   Its path and query (as the URL parser normalises them) name the topic on the wire.
   * @param {import("./multiplex.js").MultiplexOptions} [options] used when this topic's origin
   *   has no socket yet; later topics of the origin share that socket and its options.
   */
  constructor(url, options = {}) {
    super();
    if (typeof options === "string" || Array.isArray(options)) {
      throw new TypeError(
        "MultiplexWebSocket takes options, not subprotocols: it always speaks rocket-multiplex",
      );
    }
    const parsed = resolveUrl(url);
    this._url = parsed.href;
    this._origin = parsed.origin;
    this._topic = parsed.pathname + parsed.search;
    const why = invalidTopicReason(this._topic);
    if (why !== null) throw new DOMException(`invalid topic ${this._topic}: ${why}`, "SyntaxError");
    this._readyState = CONNECTING;
    this._binaryType = "arraybuffer";
    this._buffer = [];
    /** @type {((event: Event) => void) | null} */
    this.onopen = null;
    /** @type {((event: MessageEvent) => void) | null} */
    this.onmessage = null;
    /** @type {((event: CloseEvent) => void) | null} */
    this.onclose = null;
    /** @type {((event: Event) => void) | null} */
    this.onerror = null;
    for (const type of ["open", "message", "close", "error"]) {
      this.addEventListener(type, (event) => {
        const handler = this[`on${type}`];
        if (typeof handler === "function") handler.call(this, event);
      });
    }
    this._socket = MultiplexSocket._acquire(this, this._origin, options);
  }

  /** The absolute URL, as `WebSocket.url`. */
  get url() {
    return this._url;
  }

  /** The topic on the wire: the URL's path and query. */
  get topic() {
    return this._topic;
  }

  /** CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3). */
  get readyState() {
    return this._readyState;
  }

  /** Always `""`: the physical socket's subprotocol is the multiplexing one. */
  get protocol() {
    return "";
  }

  /** Always `""`. */
  get extensions() {
    return "";
  }

  /** Bytes of frames buffered until this topic opens. */
  get bufferedAmount() {
    let total = 0;
    for (const frame of this._buffer) {
      total += typeof frame === "string" ? utf8Length(frame) : frame.length;
    }
    return total;
  }

  /** `"arraybuffer"` (default) or `"blob"`: the type of binary `message` data. */
  get binaryType() {
    return this._binaryType;
  }

  set binaryType(value) {
    // Like WebSocket: an unknown value is ignored.
    if (value === "arraybuffer" || value === "blob") this._binaryType = value;
  }

  /** The shared physical socket this topic rides on. */
  get socket() {
    return this._socket;
  }

  /**
   * Send a text (string) or binary (ArrayBuffer, typed array, DataView) message on this topic.
   * Buffered while CONNECTING; discarded once CLOSING or CLOSED, as WebSocket does.
   * @param {string | ArrayBuffer | ArrayBufferView} data
   */
  send(data) {
    let frame;
    if (typeof data === "string") {
      frame = encodeText(this._topic, data);
    } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      frame = encodeBinary(this._topic, data);
    } else if (typeof Blob === "function" && data instanceof Blob) {
      throw new TypeError("MultiplexWebSocket cannot send a Blob; send await blob.arrayBuffer()");
    } else {
      frame = encodeText(this._topic, String(data)); // as WebSocket: any other value as text
    }
    if (this._readyState === CONNECTING) this._buffer.push(frame);
    else if (this._readyState === OPEN) this._socket._send(frame);
  }

  /**
   * Close this topic only (`·UNSUBSCRIBE·topic[·code[·reason]]`); the close event fires when the
   * server confirms. Code and reason are checked as `WebSocket.close` checks them.
   * @param {number} [code] 1000 or 3000-4999
   * @param {string} [reason] at most 123 UTF-8 bytes
   */
  close(code, reason) {
    if (code !== undefined) {
      code = Math.round(Number(code));
      if (code !== 1000 && !(code >= 3000 && code <= 4999)) {
        throw new DOMException(`close code ${code} is neither 1000 nor 3000-4999`, "InvalidAccessError");
      }
    }
    if (reason !== undefined) {
      reason = String(reason);
      if (utf8Length(reason) > 123) throw new DOMException("close reason over 123 bytes", "SyntaxError");
      code ??= 1000; // as WebSocket.close: a reason implies 1000
    }
    if (this._readyState === CLOSING || this._readyState === CLOSED) return;
    const wasOpen = this._readyState === OPEN;
    this._readyState = CLOSING;
    this._buffer = [];
    if (wasOpen) {
      this._socket._unsubscribe(this, code ?? null, reason ?? null);
    } else {
      // Like a WebSocket closed before it opened: an unclean 1006, fired asynchronously.
      this._socket._drop(this);
      queueMicrotask(() => this._closed(1006, "", false));
    }
  }

  _open() {
    if (this._readyState !== CONNECTING) return;
    this._readyState = OPEN;
    const buffered = this._buffer;
    this._buffer = [];
    for (const frame of buffered) this._socket._send(frame);
    this.dispatchEvent(new Event("open"));
  }

  _lost() {
    if (this._readyState === OPEN) this._readyState = CONNECTING;
  }

  _message(frame) {
    let data = frame.text;
    if (data === null) {
      data =
        this._binaryType === "blob" && typeof Blob === "function"
          ? new Blob([frame.data])
          : frame.data.slice().buffer; // a copy: the frame's buffer also holds the topic
    }
    this.dispatchEvent(makeMessageEvent(data, this._origin));
  }

  _fail(reason) {
    this._readyState = CLOSED;
    this._buffer = [];
    this.dispatchEvent(new Event("error"));
    this.dispatchEvent(makeCloseEvent(closeCodeForError(reason), reason, false));
  }

  _closed(code, reason, wasClean) {
    if (this._readyState === CLOSED) return;
    this._readyState = CLOSED;
    this._buffer = [];
    this.dispatchEvent(makeCloseEvent(code, reason, wasClean));
  }
}

for (const [name, value] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
  Object.defineProperty(MultiplexWebSocket, name, { value, enumerable: true });
  Object.defineProperty(MultiplexWebSocket.prototype, name, { value, enumerable: true });
}
