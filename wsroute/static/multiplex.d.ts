/**
 * Type declarations of multiplex.js: wsroute's browser client for the `rocket-multiplex`
 * WebSocket sub-protocol, in which every topic of one origin shares one physical socket.
 *
 * Wire format (S = U+00B7 MIDDLE DOT, "·"):
 *   data, both directions:         TOPIC S PAYLOAD   (text or binary; topic prefix UTF-8)
 *   control, text only, <= 512 B:  S ACTION (S PARAM)* [S]
 *   on a subscription granted `meta`:  TOPIC S META S PAYLOAD   (META = name=value,…)
 *   on one granted `positions` too (a topic with history), each publication carries its stream
 *   position, `offset=N[,epoch=E]`; a resubscription after a lost connection asks for what it
 *   missed with `since=EPOCH:OFFSET`, and fires `subscribed` with `recovered`.
 *   on one granted `presence` (a topic whose route has presence), the OK carries `client=ID`,
 *   and `presence=state` (the whole list) then `presence=diff` frames keep `presence` up to date.
 *
 * Import it from the path the app serves it at:
 *   import { MultiplexWebSocket } from "/wsroute/multiplex.js";
 *
 * The codec's declarations are here too: multiplex.js re-exports multiplex-codec.js. The test
 * suite checks that these declarations match the JS (tests/js/types.check.ts).
 */

/** The separator, U+00B7 MIDDLE DOT. */
export const SEP: "\u00b7";
/** The `Sec-WebSocket-Protocol` token the physical socket offers. */
export const SUBPROTOCOL: "rocket-multiplex";
/** Longest topic, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES: 100;
/** Longest control frame a client may send, in UTF-8 bytes. */
export const MAX_CONTROL_BYTES: 512;
/** Longest close reason (of UNSUBSCRIBE, as of a close frame), in UTF-8 bytes. */
export const MAX_REASON_BYTES: 123;
/** Physical close codes after which the client does not reconnect, unless overridden. */
export const DEFAULT_STOP_CODES: readonly number[];
/** The connect URL's query parameter carrying the connect topic's subscription options. */
export const OPTIONS_PARAM: "rocket-multiplex";
/** The subscription option that turns on per-frame metadata. */
export const META: "meta";
/** Longest metadata field of a data frame, in characters. */
export const MAX_ITEMS_CHARS: 256;
/** The subscription option asking for stream positions (granted only on topics with history). */
export const POSITIONS: "positions";
/** The subscription option asking to recover from a position: `since=EPOCH:OFFSET`. */
export const SINCE: "since";
/**
 * The subscription option asking for presence (granted only on topics whose route has it):
 * the OK then carries `client=ID`, and `presence=state` / `presence=diff` frames follow.
 */
export const PRESENCE: "presence";
/** Largest offset a position may have, 2**53 - 1: exact in JavaScript's numbers. */
export const MAX_OFFSET: 9007199254740991;
/** How long `request()` waits for its reply unless told otherwise, in ms. */
export const DEFAULT_REQUEST_TIMEOUT: 10000;
/** The close code of a socket replaced because a reply did not come. */
export const NO_REPLY_CODE: 4408;

/** REASON fields of `ERR` and `INVALID` replies, spelled exactly as on the wire. */
export const Reason: Readonly<{
  ALREADY_SUBSCRIBED: "Already Subscribed";
  NOT_SUBSCRIBED: "Not Subscribed";
  TOO_MANY_TOPICS: "Too Many Topics";
  INVALID_TOPIC: "Invalid Topic";
  NO_CONTROL_CHARACTER: "No Control Character";
  CONTROL_TOO_LONG: "Control Message Too Long";
  INVALID_CONTROL: "Invalid Control Message";
  INVALID_UTF8: "Invalid Utf-8";
  INVALID_METADATA: "Invalid Metadata";
}>;

/** A malformed frame; `reason` is one of the `INVALID` reasons of {@link Reason}. */
export class ProtocolError extends Error {
  constructor(reason: string, detail?: string);
  readonly reason: string;
  /** What exactly was wrong (for logs, not for the wire). */
  readonly detail: string;
}

/** `TOPIC·PAYLOAD`: `text` for a text frame, `data` (a view into the frame) for a binary one. */
export type DataFrame =
  | { type: "data"; topic: string; text: string; data: null }
  | { type: "data"; topic: string; text: null; data: Uint8Array };
/** Client `·SUBSCRIBE·topic`. */
export interface SubscribeFrame {
  type: "subscribe";
  topic: string;
  /** The options field's items (`{}` without one), e.g. `{ meta: "" }`. */
  options: Record<string, string>;
}
/** A `meta` subscription's payload split into its metadata items and the payload. */
export type MetaPayload =
  | { items: Record<string, string>; text: string; data: null }
  | { items: Record<string, string>; text: null; data: Uint8Array };
/**
 * Where a topic's stream stands: its `epoch` and the `offset` of its last publication (0 before
 * the first one).
 */
export interface StreamPosition {
  epoch: string;
  offset: number;
}
/** Client `·UNSUBSCRIBE·topic[·code[·reason]]`; `code` is 1000 or 3000-4999 when set. */
export interface UnsubscribeFrame {
  type: "unsubscribe";
  topic: string;
  code: number | null;
  reason: string | null;
}
/** Server `·OK·ACTION·PARAMS…`. */
export interface OkFrame {
  type: "ok";
  action: string;
  params: string[];
}
/** Server `·ERR·REASON·ACTION·PARAMS…`. */
export interface ErrFrame {
  type: "err";
  reason: string;
  action: string;
  params: string[];
}
/** Server `·INVALID·REASON`. */
export interface InvalidFrame {
  type: "invalid";
  reason: string;
}
/** Server `·UNSUBSCRIBE·topic·code·reason`: the server closed one topic. */
export interface ServerUnsubscribeFrame {
  type: "server_unsubscribe";
  topic: string;
  code: number;
  reason: string;
}
export type ClientFrame = DataFrame | SubscribeFrame | UnsubscribeFrame;
export type ServerFrame = DataFrame | OkFrame | ErrFrame | InvalidFrame | ServerUnsubscribeFrame;

/** Parse a frame from the server. @throws {ProtocolError} */
export function parseServerFrame(frame: string | ArrayBuffer | ArrayBufferView): ServerFrame;
/** Parse a frame a client sent (for tests and fake servers). @throws {ProtocolError} */
export function parseClientFrame(frame: string | ArrayBuffer | ArrayBufferView): ClientFrame;
/** Why a topic may not be subscribed, or `null` if it may. */
export function invalidTopicReason(topic: string): string | null;
/** UTF-8 length; a lone surrogate counts 3 bytes. */
export function utf8Length(text: string): number;
/** Close code for a refused SUBSCRIBE: `"403 Forbidden"` → 4403, other reasons → 1008. */
export function closeCodeForError(reason: string): number;

/** `topic·payload`. @throws {TypeError} for an empty topic or one containing `·` */
export function encodeText(topic: string, payload: string): string;
/** UTF-8 topic, separator, payload. @throws {TypeError} as {@link encodeText} */
export function encodeBinary(topic: string, payload: ArrayBuffer | ArrayBufferView): Uint8Array;
/** `·SUBSCRIBE·topic[·options]`, e.g. `encodeSubscribe("/room", { meta: "" })`. */
export function encodeSubscribe(topic: string, options?: Record<string, string | number> | null): string;
/** `"meta,since=e1:17"` → `{ meta: "", since: "e1:17" }`. @throws {ProtocolError} */
export function parseItems(text: string, reason?: string): Record<string, string>;
/** Inverse of {@link parseItems}. @throws {TypeError} for a name or value outside the grammar */
export function encodeItems(items: Record<string, string | number>): string;
/** Split a `meta` subscription's data frame payload, `META·PAYLOAD`. @throws {ProtocolError} */
export function splitMeta(frame: DataFrame): MetaPayload;
/** `topic·META·payload`, e.g. `encodeMetaText("/room", { id: 7 }, "hi")` → `/room·id=7·hi`. */
export function encodeMetaText(topic: string, items: Record<string, string | number>, payload: string): string;
/** Binary `topic·META·payload`. */
export function encodeMetaBinary(
  topic: string,
  items: Record<string, string | number>,
  payload: ArrayBuffer | ArrayBufferView,
): Uint8Array;
/**
 * A `since` option's value: `"Xy1_-z:17"` → `{ epoch: "Xy1_-z", offset: 17 }`.
 * @throws {ProtocolError} `Invalid Control Message` unless the epoch is 1-32 of `A-Za-z0-9._~-`
 *   and the offset a decimal integer up to {@link MAX_OFFSET} without leading zeros
 */
export function parseSince(value: string): StreamPosition;
/** Inverse of {@link parseSince}. @throws {TypeError} for what would not parse back */
export function encodeSince(epoch: string, offset: number): string;

/**
 * Why `request()` rejected: `"error"` = the handler raised (`code`/`reason`: what the error
 * would have closed the topic with); `"timeout"`; `"closed"` = the topic closed or the
 * connection was lost while the request was in flight.
 */
export class RequestError extends Error {
  constructor(kind: "error" | "timeout" | "closed", reason: string, code?: number | null);
  readonly kind: "error" | "timeout" | "closed";
  readonly code: number | null;
  readonly reason: string;
}

/** Options of `MultiplexWebSocket.request()`. */
export interface RequestOptions {
  /** ms to wait for the reply; default {@link DEFAULT_REQUEST_TIMEOUT}; `Infinity`: until the reply or the close. */
  timeout?: number;
}
/** `·UNSUBSCRIBE·topic[·code[·reason]]`. @throws {TypeError} for a reason without a code */
export function encodeUnsubscribe(topic: string, code?: number | null, reason?: string | null): string;
/** `·OK·ACTION·PARAMS…`. */
export function encodeOk(action: string, ...params: string[]): string;
/** `·ERR·REASON·ACTION·PARAMS…`. */
export function encodeErr(reason: string, action: string, ...params: string[]): string;
/** `·INVALID·REASON`. */
export function encodeInvalid(reason: string): string;
/** `·UNSUBSCRIBE·topic·code·reason`. @throws {TypeError} for a code outside 1000-4999 */
export function encodeServerUnsubscribe(topic: string, code: number, reason: string): string;

/** Options of a topic's shared socket; only the first topic of an origin's socket sets them. */
export interface MultiplexOptions {
  /** WebSocket constructor to use instead of `globalThis.WebSocket` (tests, Node). */
  WebSocket?: new (url: string, protocols: string[]) => WebSocket;
  /** Source of randomness for the backoff jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Timer hooks. Default the global `setTimeout` / `clearTimeout`. */
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (id: any) => void;
  /** Backoff: delay = random() × min(backoffCap, backoffBase × 2^attempt) ms. Default 250. */
  backoffBase?: number;
  /** Default 10 000 ms. */
  backoffCap?: number;
  /** Close codes of the physical socket that stop reconnection. Default {@link DEFAULT_STOP_CODES}. */
  stopCodes?: Iterable<number>;
  /**
   * Ask for the protocol extensions (per-frame metadata, which `request()` needs, stream
   * positions, which recovery after a reconnect needs, and presence) on every subscription.
   * Default true; false for a server that speaks only plain rocket-multiplex.
   */
  extensions?: boolean;
  /**
   * ms a SUBSCRIBE or UNSUBSCRIBE waits for the server's reply. The server answers a socket's
   * frames in order, so a reply that does not come means the whole socket is stuck (a guard
   * waiting on a dead database, a connection the network dropped without a word): past it
   * the socket is closed with {@link NO_REPLY_CODE} and replaced, as a lost connection is
   * (backoff, every topic subscribed again). Default `Infinity`: wait for ever. Only for apps
   * whose handlers answer quickly: a slow message handler (or request) delays the reply too.
   */
  replyTimeout?: number;
}

/**
 * The physical socket shared by the topics of one origin (created by
 * {@link MultiplexWebSocket}; exported for inspection and tests).
 */
export class MultiplexSocket extends EventTarget {
  constructor(origin: string, options?: MultiplexOptions);
  /** The origin its topics share, e.g. `"wss://example.com"`. */
  readonly origin: string;
  /**
   * `waiting` = backing off before a reconnect; `closed` = discarded. Each change fires a
   * `statechange` event ({@link MultiplexStateEvent}) soon after, from a microtask.
   */
  readonly state: MultiplexSocketState;
  /** Failed connections in a row; reset once a connection opens. */
  readonly attempt: number;
  /** Topics wanted on this socket, the next connect URL's first. */
  readonly topics: string[];
  /** The physical WebSocket now in use, if any. */
  readonly webSocket: WebSocket | null;
  addEventListener<K extends keyof MultiplexSocketEventMap>(
    type: K,
    listener: (this: MultiplexSocket, event: MultiplexSocketEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof MultiplexSocketEventMap>(
    type: K,
    listener: (this: MultiplexSocket, event: MultiplexSocketEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** The states of the physical socket shared by an origin's topics. */
export type MultiplexSocketState = "idle" | "connecting" | "open" | "waiting" | "closed";

/** The `statechange` event of a {@link MultiplexSocket}. */
export interface MultiplexStateEvent extends Event {
  /** The state the socket changed to. */
  readonly state: MultiplexSocketState;
}

export interface MultiplexSocketEventMap {
  statechange: MultiplexStateEvent;
}

/**
 * The `subscribed` event of a {@link MultiplexWebSocket}: fired on every successful
 * subscription and resubscription, right after `open` and before any replayed `message`.
 */
export interface MultiplexSubscribedEvent extends Event {
  /** This subscription asked to recover from the topic's position (`since`, after a reconnect). */
  readonly wasRecovering: boolean;
  /**
   * The server replays every publication missed since that position. False with
   * `wasRecovering` = a gap the history could not fill: reload the state some other way.
   */
  readonly recovered: boolean;
}

/**
 * One client on a topic, as a `presence` event reports it joining or leaving. A user with two
 * tabs has two clients, each with its own id.
 */
export interface PresenceChange {
  /** The client's id: one per subscription (the topic's own is its `clientId`). */
  readonly clientId: string;
  /** The user the server knows the client as; `null` for an anonymous one. */
  readonly user: string | null;
  /** What the client shares (any JSON; frozen). */
  readonly info: unknown;
}

/** One client of a {@link PresenceEntry}. */
export interface PresenceClient {
  readonly clientId: string;
  /** What the client shares (any JSON; frozen). */
  readonly info: unknown;
}

/**
 * One entry of `MultiplexWebSocket.presence`: a user with all of their clients (tabs,
 * devices), or a single client without a user (`user: null`).
 */
export interface PresenceEntry {
  readonly user: string | null;
  /** In order of first appearance; never empty. */
  readonly clients: readonly PresenceClient[];
}

/**
 * The `presence` event of a {@link MultiplexWebSocket}: fired on the state that follows each
 * subscription's `subscribed` (even one that changes nothing: the list is then current), and
 * whenever the server reports a change to `presence`; before any message that follows.
 */
export interface MultiplexPresenceEvent extends Event {
  /**
   * Clients that joined, or whose user or info changed. For the state after a reconnect: those
   * not known before, or changed; for the first state: everyone.
   */
  readonly joins: readonly PresenceChange[];
  /** Clients that left (as they were last known). */
  readonly leaves: readonly PresenceChange[];
}

export interface MultiplexWebSocketEventMap {
  open: Event;
  message: MessageEvent;
  close: CloseEvent;
  error: Event;
  subscribed: MultiplexSubscribedEvent;
  presence: MultiplexPresenceEvent;
}

/**
 * One topic of a shared rocket-multiplex socket, used like a browser `WebSocket`. Sends made
 * while CONNECTING are buffered; a lost connection takes the topic back to CONNECTING (no close
 * event) while the socket reconnects; `send(Blob)` throws; `protocol` is always `""`.
 * A refused SUBSCRIBE fires `error` then `close` (4000 + HTTP status, else 1008). Each
 * successful (re)subscription fires `open` then `subscribed` ({@link MultiplexSubscribedEvent}),
 * then, on a topic with presence, `presence` ({@link MultiplexPresenceEvent}).
 */
export class MultiplexWebSocket extends EventTarget {
  /**
   * @param url `ws:`/`wss:` (or `http:`/`https:`) URL, or a path relative to `location`.
   * @throws {DOMException} `SyntaxError` for a bad URL or topic (over 100 bytes, `//…`)
   */
  constructor(url: string | URL, options?: MultiplexOptions);
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;
  readonly url: string;
  /** The topic on the wire: the URL's path and query. */
  readonly topic: string;
  readonly readyState: 0 | 1 | 2 | 3;
  readonly protocol: "";
  readonly extensions: "";
  /** Bytes buffered until the topic opens. */
  readonly bufferedAmount: number;
  binaryType: "arraybuffer" | "blob";
  /** The shared physical socket. */
  readonly socket: MultiplexSocket;
  /**
   * Where this topic's stream stands for this client (the last publication delivered, or where
   * the subscription started), kept across reconnects to recover from; `null` before the
   * first subscription and on a topic without history. A copy: changing it changes nothing.
   */
  readonly position: StreamPosition | null;
  /**
   * This client's id in the topic's presence (as it appears in `presence`), from the
   * subscription's OK; `null` on a topic without presence, and once closed. While reconnecting,
   * the last subscription's, until the next OK.
   */
  readonly clientId: string | null;
  /**
   * Who is on the topic, across every server worker: one entry per user with all their
   * clients, and one per client without a user, in order of first appearance. Frozen, and the
   * same array until it changes (the `presence` event). Empty on a topic without presence and
   * once closed; while reconnecting, the last list known, until the new subscription's state
   * replaces it.
   */
  readonly presence: readonly PresenceEntry[];
  onopen: ((this: MultiplexWebSocket, event: Event) => unknown) | null;
  onmessage: ((this: MultiplexWebSocket, event: MessageEvent) => unknown) | null;
  onclose: ((this: MultiplexWebSocket, event: CloseEvent) => unknown) | null;
  onerror: ((this: MultiplexWebSocket, event: Event) => unknown) | null;
  onsubscribed: ((this: MultiplexWebSocket, event: MultiplexSubscribedEvent) => unknown) | null;
  onpresence: ((this: MultiplexWebSocket, event: MultiplexPresenceEvent) => unknown) | null;
  /** Text for a string, binary for an ArrayBuffer or view; other values are sent as `String(data)`. */
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  /**
   * Send `data` as a request; resolves with the handler's return value as `MessageEvent.data`
   * would carry it. @throws {RequestError} (as a rejection) on an error reply, a timeout, or
   * when the topic closes or the connection is lost first.
   */
  request(data: string | ArrayBuffer | ArrayBufferView, options?: RequestOptions): Promise<string | ArrayBuffer | Blob>;
  /**
   * Unsubscribe this topic only; `close` fires on the server's OK (or at once, 1006, if the
   * topic never opened). @throws {DOMException} as `WebSocket.close` does
   */
  close(code?: number, reason?: string): void;
  addEventListener<K extends keyof MultiplexWebSocketEventMap>(
    type: K,
    listener: (this: MultiplexWebSocket, event: MultiplexWebSocketEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof MultiplexWebSocketEventMap>(
    type: K,
    listener: (this: MultiplexWebSocket, event: MultiplexWebSocketEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | EventListenerOptions,
  ): void;
}
