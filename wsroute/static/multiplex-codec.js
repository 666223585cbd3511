// @ts-check
/**
 * The rocket-multiplex codec: pure functions from frames to objects and back, no sockets, no
 * timers, nothing global. It follows the same rules as wsroute/multiplex/codec.py and is tested
 * against the same fixtures (tests/fixtures/multiplex_frames.json).
 *
 * Kept apart from the client (multiplex.js, which re-exports all of it) so that the protocol's
 * rules can be read, and tested, without its state machine.
 */


/** The separator, U+00B7 MIDDLE DOT; a URL cannot contain it unescaped. */
export const SEP = "\u00b7";
/** The `Sec-WebSocket-Protocol` token the physical socket offers. */
export const SUBPROTOCOL = "rocket-multiplex";
/** Longest topic, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 100;
/** Longest control frame a client may send, in UTF-8 bytes. */
export const MAX_CONTROL_BYTES = 512;
/** Longest close reason (of UNSUBSCRIBE, as of a close frame), in UTF-8 bytes. */
export const MAX_REASON_BYTES = 123;
/** Physical close codes after which the client does not reconnect (overridable per socket). */
export const DEFAULT_STOP_CODES = Object.freeze([1008, 3000, 3003, 4401, 4403]);
/** The connect URL's query parameter carrying the connect topic's subscription options. */
export const OPTIONS_PARAM = "rocket-multiplex";
/** The subscription option that turns on per-frame metadata (docs/protocol.md, "Extensions"). */
export const META = "meta";
/** Longest metadata field of a data frame, in characters (all ASCII). */
export const MAX_ITEMS_CHARS = 256;
/**
 * The subscription option asking for stream positions: `epoch`/`offset` in the OK, `offset` on
 * every publication (granted only on topics with history).
 */
export const POSITIONS = "positions";
/** The subscription option asking to recover from a position: `since=EPOCH:OFFSET`. */
export const SINCE = "since";
/**
 * The subscription option asking for presence (who is on the topic): granted only on topics
 * whose route has presence; the OK then carries `client=ID`, and `presence=state` and
 * `presence=diff` data frames follow.
 */
export const PRESENCE = "presence";
/**
 * Largest offset a position may have, 2**53 - 1: exact in JavaScript's numbers.
 * @type {9007199254740991}
 */
export const MAX_OFFSET = 9007199254740991;

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
  INVALID_METADATA: "Invalid Metadata",
});

/**
 * `TOPIC·PAYLOAD`: `text` for a text frame, `data` (a view into the frame) for a binary one.
 * @typedef {{ type: "data", topic: string, text: string, data: null }
 *   | { type: "data", topic: string, text: null, data: Uint8Array }} DataFrame
 */
/**
 * Client `·SUBSCRIBE·topic[·options]`; `options` are the parsed items (`{}` without the field).
 * @typedef {{ type: "subscribe", topic: string, options: Record<string, string> }} SubscribeFrame
 */
/**
 * A `meta` subscription's payload split: its metadata items, and the payload (`text` for a text
 * frame, `data` for a binary one).
 * @typedef {{ items: Record<string, string>, text: string, data: null }
 *   | { items: Record<string, string>, text: null, data: Uint8Array }} MetaPayload
 */
/**
 * Where a topic's stream stands: its `epoch` and the `offset` of its last publication (0
 * before the first one).
 * @typedef {{ epoch: string, offset: number }} StreamPosition
 */
/**
 * Client `·UNSUBSCRIBE·topic[·code[·reason]]`; `code` is 1000 or 3000-4999 when set.
 * @typedef {{ type: "unsubscribe", topic: string, code: number | null, reason: string | null }}
 *   UnsubscribeFrame
 */
/**
 * Server `·OK·ACTION·PARAMS…`.
 * @typedef {{ type: "ok", action: string, params: string[] }} OkFrame
 */
/**
 * Server `·ERR·REASON·ACTION·PARAMS…`.
 * @typedef {{ type: "err", reason: string, action: string, params: string[] }} ErrFrame
 */
/**
 * Server `·INVALID·REASON`.
 * @typedef {{ type: "invalid", reason: string }} InvalidFrame
 */
/**
 * Server `·UNSUBSCRIBE·topic·code·reason`: the server closed one topic.
 * @typedef {{ type: "server_unsubscribe", topic: string, code: number, reason: string }}
 *   ServerUnsubscribeFrame
 */
/** @typedef {DataFrame | SubscribeFrame | UnsubscribeFrame} ClientFrame */
/** @typedef {DataFrame | OkFrame | ErrFrame | InvalidFrame | ServerUnsubscribeFrame} ServerFrame */

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
/** @type {Readonly<Record<string, number>>} */
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

/** @param {boolean} later */
function missingSeparator(later) {
  // A separator only past the window means a topic over MAX_TOPIC_BYTES: never subscribed.
  return later
    ? new ProtocolError(Reason.NOT_SUBSCRIBED, `topic over ${MAX_TOPIC_BYTES} bytes`)
    : new ProtocolError(Reason.NO_CONTROL_CHARACTER, "no separator in the frame");
}

/** @param {string} detail */
function invalid(detail) {
  return new ProtocolError(Reason.INVALID_CONTROL, detail);
}

/**
 * `[head, found, tail]` around the first separator, like Python's str.partition.
 * @param {string} text
 * @returns {[string, boolean, string]}
 */
function partition(text) {
  const i = text.indexOf(SEP);
  return i < 0 ? [text, false, ""] : [text.slice(0, i), true, text.slice(i + SEP.length)];
}

/**
 * Split at most `max` times, keeping the remainder whole (unlike `split(sep, n)`, which drops it).
 * @param {string} text
 * @param {number} [max]
 * @returns {string[]}
 */
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

/** @param {string} body */
function stripTrailing(body) {
  return body.endsWith(SEP) ? body.slice(0, -SEP.length) : body;
}

/**
 * @param {string} action
 * @param {string} tail
 */
function params(action, tail) {
  const restAt = Object.hasOwn(REST_PARAM, action) ? REST_PARAM[action] : Infinity;
  return splitFields(tail, restAt);
}

/**
 * @param {string} text
 * @param {number} lowestAppCode
 * @returns {number}
 */
function parseCode(text, lowestAppCode) {
  // Exactly four ASCII digits, as codec.py: Number() would also take " 1e3", "0x3e8", ...
  if (/^[0-9]{4}$/.test(text)) {
    const code = Number(text);
    if (code === 1000 || (code >= lowestAppCode && code <= 4999)) return code;
  }
  throw invalid(`invalid close code ${JSON.stringify(text)}`);
}

/**
 * @param {string} text
 * @returns {DataFrame}
 */
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

/**
 * @param {Uint8Array} bytes
 * @param {number} from
 * @param {number} to
 */
function findSep(bytes, from, to) {
  for (let i = bytes.indexOf(SEP_B0, from); i >= 0 && i + 1 < to; i = bytes.indexOf(SEP_B0, i + 1)) {
    if (bytes[i + 1] === SEP_B1) return i;
  }
  return -1;
}

/**
 * @param {ArrayBuffer | ArrayBufferView} data
 * @returns {Uint8Array}
 */
function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError("a frame is a string, an ArrayBuffer or an ArrayBuffer view");
}

/**
 * @param {ArrayBuffer | ArrayBufferView} data
 * @returns {DataFrame}
 */
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

/**
 * @param {string} text
 * @returns {SubscribeFrame | UnsubscribeFrame}
 */
function parseClientControl(text) {
  if (text.length > MAX_CONTROL_BYTES || utf8Length(text) > MAX_CONTROL_BYTES) {
    throw new ProtocolError(Reason.CONTROL_TOO_LONG, `over ${MAX_CONTROL_BYTES} bytes`);
  }
  let [action, found, tail] = partition(stripTrailing(text.slice(SEP.length)));
  if (action === "SUBSCRIBE") {
    if (!found) throw invalid("SUBSCRIBE needs a topic");
    const [topic, hasOptions, options] = partition(tail);
    if (!hasOptions) return { type: "subscribe", topic, options: {} };
    if (!options || options.includes(SEP)) {
      throw invalid("SUBSCRIBE takes a topic and at most one non-empty options field");
    }
    const parsed = parseItems(options, Reason.INVALID_CONTROL);
    // Every extension needs meta: a field without it is not options (say, the tail of a topic
    // that held a raw separator).
    if (!Object.hasOwn(parsed, META)) throw invalid(`options without ${META}`);
    return { type: "subscribe", topic, options: parsed };
  }
  if (action === "UNSUBSCRIBE") {
    if (!found) throw invalid("UNSUBSCRIBE needs a topic");
    let topic;
    [topic, found, tail] = partition(tail);
    if (!found) return { type: "unsubscribe", topic, code: null, reason: null };
    const [codeText, hasReason, reason] = partition(tail);
    // Codes a browser's WebSocket.close() accepts.
    const code = parseCode(codeText, 3000);
    // What a close frame (and WebSocket.close) allows.
    if (hasReason && utf8Length(reason) > MAX_REASON_BYTES) {
      throw invalid(`close reason over ${MAX_REASON_BYTES} bytes`);
    }
    return { type: "unsubscribe", topic, code, reason: hasReason ? reason : null };
  }
  throw invalid(`unknown client action ${JSON.stringify(action)}`);
}

/**
 * @param {string} text
 * @returns {OkFrame | ErrFrame | InvalidFrame | ServerUnsubscribeFrame}
 */
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
 * @returns {ServerFrame}
 * @throws {ProtocolError} for a malformed frame
 */
export function parseServerFrame(frame) {
  if (typeof frame !== "string") return parseBinary(frame);
  return frame.startsWith(SEP) ? parseServerControl(frame) : parseTextData(frame);
}

/**
 * Parse a frame a client sent (what the server does; used by tests and fake servers).
 * @param {string | ArrayBuffer | ArrayBufferView} frame
 * @returns {ClientFrame}
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

/** @param {string} topic */
function checkPrefix(topic) {
  // An empty topic would make the frame a control frame; a separator would move the split.
  if (!topic || topic.includes(SEP)) throw new TypeError(`invalid topic ${JSON.stringify(topic)}`);
}

/**
 * @param {string[]} fields
 * @param {boolean} [restLast] the last field is a remainder, which may contain the separator
 */
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

/**
 * @param {string} action
 * @param {string[]} replyParams
 */
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
 * `·SUBSCRIBE·topic[·options]`: `encodeSubscribe("/room", { meta: "" })` is `·SUBSCRIBE·/room·meta`.
 * @param {string} topic
 * @param {Record<string, string | number> | null} [options]
 * @returns {string}
 */
export function encodeSubscribe(topic, options = null) {
  if (options && Object.keys(options).length > 0) {
    return control(["SUBSCRIBE", topic, encodeItems(options)]);
  }
  return control(["SUBSCRIBE", topic]);
}

// NAME "=" VALUE or a bare NAME (a flag, read as ""); the same grammar as codec.py's _ITEM.
const ITEM = /^([a-z][a-z0-9-]{0,31})(?:=([A-Za-z0-9._:~-]{1,64}))?$/;

/**
 * Parse `name=value` items joined by `,`: `"meta,since=e1:17"` gives
 * `{ meta: "", since: "e1:17" }`; `""` gives `{}`.
 * @param {string} text
 * @param {string} [reason] the ProtocolError reason for a malformed field
 * @returns {Record<string, string>}
 */
export function parseItems(text, reason = Reason.INVALID_METADATA) {
  /** @type {Record<string, string>} */
  const items = {};
  if (!text) return items;
  for (const item of text.split(",")) {
    const match = ITEM.exec(item);
    if (match === null) throw new ProtocolError(reason, `invalid item ${JSON.stringify(item.slice(0, 40))}`);
    const name = /** @type {string} */ (match[1]);
    if (Object.hasOwn(items, name)) throw new ProtocolError(reason, `${JSON.stringify(name)} given twice`);
    items[name] = match[2] ?? "";
  }
  return items;
}

/**
 * Inverse of {@link parseItems}: `{ id: 7 }` gives `"id=7"`; `""` is a flag.
 * @param {Record<string, string | number>} items
 * @returns {string}
 */
export function encodeItems(items) {
  const parts = [];
  for (const [name, value] of Object.entries(items)) {
    const text = String(value);
    const item = text ? `${name}=${text}` : name;
    if (!ITEM.test(item)) throw new TypeError(`invalid item ${JSON.stringify(item)}`);
    parts.push(item);
  }
  return parts.join(",");
}

// The same grammar as codec.py's parse_since: 1-32 epoch characters, and an offset without
// leading zeros; at most 16 digits, so Number() reads it exactly enough to compare with MAX_OFFSET.
const EPOCH = /^[A-Za-z0-9._~-]{1,32}$/;
const OFFSET = /^(?:0|[1-9][0-9]{0,15})$/;

/**
 * Parse a `since` option's value `EPOCH:OFFSET`: `"Xy1_-z:17"` gives
 * `{ epoch: "Xy1_-z", offset: 17 }`.
 * @param {string} value
 * @returns {StreamPosition}
 * @throws {ProtocolError} `Invalid Control Message` unless the epoch is 1-32 of `A-Za-z0-9._~-`
 *   and the offset a decimal integer up to {@link MAX_OFFSET} without leading zeros
 */
export function parseSince(value) {
  const i = value.lastIndexOf(":");
  const epoch = value.slice(0, i);
  const offset = value.slice(i + 1);
  if (i < 0 || !EPOCH.test(epoch) || !OFFSET.test(offset) || Number(offset) > MAX_OFFSET) {
    throw invalid(`invalid since position ${JSON.stringify(value.slice(0, 80))}: use EPOCH:OFFSET`);
  }
  return { epoch, offset: Number(offset) };
}

/**
 * Inverse of {@link parseSince}: `encodeSince("Xy1_-z", 17)` is `"Xy1_-z:17"`.
 * @param {string} epoch
 * @param {number} offset
 * @returns {string}
 * @throws {TypeError} for what would not parse back (an offset that is not a safe integer >= 0,
 *   an epoch outside the grammar)
 */
export function encodeSince(epoch, offset) {
  const value = `${epoch}:${offset}`;
  try {
    parseSince(value);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    throw new TypeError(`invalid position ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Split the payload of a `meta` subscription's data frame, `META·PAYLOAD`.
 * @param {DataFrame} frame
 * @returns {MetaPayload}
 */
export function splitMeta(frame) {
  if (frame.text !== null) {
    const { text } = frame;
    if (text.startsWith(SEP)) return { items: {}, text: text.slice(SEP.length), data: null };
    const i = text.indexOf(SEP);
    if (i < 0 || i > MAX_ITEMS_CHARS) {
      throw new ProtocolError(Reason.INVALID_METADATA, "no metadata field before the payload");
    }
    return { items: parseItems(text.slice(0, i)), text: text.slice(i + SEP.length), data: null };
  }
  const bytes = frame.data;
  const i = findSep(bytes, 0, Math.min(bytes.length, MAX_ITEMS_CHARS + 2));
  if (i < 0) throw new ProtocolError(Reason.INVALID_METADATA, "no metadata field before the payload");
  let head = "";
  for (const byte of bytes.subarray(0, i)) {
    if (byte > 0x7f) throw new ProtocolError(Reason.INVALID_METADATA, "metadata is not ASCII");
    head += String.fromCharCode(byte);
  }
  return { items: parseItems(head), text: null, data: bytes.subarray(i + 2) };
}

/**
 * Text data frame of a `meta` subscription: `encodeMetaText("/room", { id: 7 }, "hi")` is
 * `/room·id=7·hi`; `{}` gives `/room··hi`.
 * @param {string} topic
 * @param {Record<string, string | number>} items
 * @param {string} payload
 * @returns {string}
 */
export function encodeMetaText(topic, items, payload) {
  return encodeText(topic, encodeItems(items) + SEP + payload);
}

/**
 * Binary data frame of a `meta` subscription: `topic·META·payload`.
 * @param {string} topic
 * @param {Record<string, string | number>} items
 * @param {ArrayBuffer | ArrayBufferView} payload
 * @returns {Uint8Array}
 */
export function encodeMetaBinary(topic, items, payload) {
  const head = utf8Encoder.encode(encodeItems(items) + SEP);
  const body = toBytes(payload);
  const joined = new Uint8Array(head.length + body.length);
  joined.set(head, 0);
  joined.set(body, head.length);
  return encodeBinary(topic, joined);
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
