// @ts-check
/**
 * wsroute browser client for the `rocket-multiplex` WebSocket sub-protocol.
 *
 * Many topics, one socket per origin. Separator S = U+00B7 MIDDLE DOT:
 *   data, both directions:         TOPIC S PAYLOAD   (text or binary; topic prefix UTF-8)
 *   control, text only, <= 512 B:  S ACTION (S PARAM)* [S]
 *   client: SUBSCRIBE topic, UNSUBSCRIBE topic [code [reason]]; server: OK, ERR, INVALID, UNSUBSCRIBE
 *   extensions (opt-in per subscription, on by default here): SUBSCRIBE topic S
 *   meta,positions,presence, and then data frames TOPIC S META S PAYLOAD, which carry request
 *   ids and replies, and on a topic with history each publication's stream position
 *   (offset=N[,epoch=E]); after a lost connection the client resubscribes with
 *   since=EPOCH:OFFSET, and the server replays what it missed if it still can. On a topic with
 *   presence the OK names this client (client=ID), and presence=state (the whole list, once
 *   per subscription) then presence=diff frames (joins and leaves) keep `topic.presence`
 *   (docs/protocol.md, "Extensions")
 *
 *   import { MultiplexWebSocket } from "/wsroute/multiplex.js";
 *   const room = new MultiplexWebSocket("/rooms/lobby");   // used like a WebSocket
 *   room.onmessage = (event) => console.log(event.data);
 *   room.send("hello");
 *   const answer = await room.request("ping", { timeout: 5000 });  // the handler's return value
 *   room.onsubscribed = (event) => {  // on every (re)subscription, before replayed messages
 *     if (event.wasRecovering && !event.recovered) reloadState();  // a gap history can't fill
 *   };
 *   room.onpresence = () => render(room.presence);  // [{ user, clients: [{ clientId, info }] }]
 *
 * Dependency-free ES modules, no build step: this one is the client (the state machine of the
 * shared socket and its topics); the frames are parsed and built by multiplex-codec.js, whose
 * exports this module re-exports, and reconnects are timed by retry-timer.js. Their types are
 * in multiplex.d.ts.
 */

import {
  DEFAULT_STOP_CODES,
  MAX_REASON_BYTES,
  META,
  OPTIONS_PARAM,
  POSITIONS,
  PRESENCE,
  ProtocolError,
  SINCE,
  SUBPROTOCOL,
  closeCodeForError,
  encodeBinary,
  encodeItems,
  encodeMetaBinary,
  encodeMetaText,
  encodeSince,
  encodeSubscribe,
  encodeText,
  encodeUnsubscribe,
  invalidTopicReason,
  parseItems,
  parseServerFrame,
  parseSince,
  splitMeta,
  utf8Length,
} from "./multiplex-codec.js";
import { RetryTimer } from "./retry-timer.js";

export * from "./multiplex-codec.js";

// A topic's readyState, numbered as WebSocket's.
/** @type {0} */
const CONNECTING = 0;
/** @type {1} */
const OPEN = 1;
/** @type {2} */
const CLOSING = 2;
/** @type {3} */
const CLOSED = 3;
/** @typedef {typeof CONNECTING | typeof OPEN | typeof CLOSING | typeof CLOSED} ReadyState */

/**
 * The shared socket's `state`; `WAITING` = backing off before a reconnect. Public: the
 * `statechange` event carries these strings.
 */
const SocketState = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  OPEN: "open",
  WAITING: "waiting",
  CLOSED: "closed",
});
/** @typedef {typeof SocketState[keyof typeof SocketState]} MultiplexSocketState */
/**
 * The `statechange` event of a {@link MultiplexSocket}; `state` is the state it changed to.
 * @typedef {Event & { readonly state: MultiplexSocketState }} MultiplexStateEvent
 */

/**
 * The `subscribed` event of a {@link MultiplexWebSocket}, fired on every successful
 * subscription and resubscription: `wasRecovering` = it asked to recover from a position (after
 * a lost connection), `recovered` = the server replays every publication missed since then.
 * @typedef {Event & { readonly wasRecovering: boolean, readonly recovered: boolean }}
 *   MultiplexSubscribedEvent
 */

/**
 * One client on a topic: its id (one per subscription: a user with two tabs has two), the user
 * the server knows it as (null for an anonymous one) and the info it shares (any JSON, frozen).
 * The `presence` event's `joins` and `leaves` list these.
 * @typedef {{ readonly clientId: string, readonly user: string | null, readonly info: unknown }}
 *   PresenceChange
 */
/**
 * One client of a {@link PresenceEntry}.
 * @typedef {{ readonly clientId: string, readonly info: unknown }} PresenceClient
 */
/**
 * One entry of a topic's `presence`: a user with all their clients (tabs, devices), or a single
 * client without a user (`user: null`).
 * @typedef {{ readonly user: string | null, readonly clients: readonly PresenceClient[] }}
 *   PresenceEntry
 */
/**
 * The `presence` event of a {@link MultiplexWebSocket}, fired on each subscription's presence
 * state (the list is current), and whenever `presence` changes: the clients that joined (or
 * whose user or info changed) and those that left.
 * @typedef {Event & { readonly joins: readonly PresenceChange[], readonly leaves: readonly PresenceChange[] }}
 *   MultiplexPresenceEvent
 */

/**
 * What the server knows of a topic on the current connection; a topic it does not know has no
 * state. Requests in flight have their own states, so that a reply always finds the state its
 * request left.
 */
const TopicState = Object.freeze({
  SUBSCRIBING: "subscribing",
  SUBSCRIBED: "subscribed",
  UNSUBSCRIBING: "unsubscribing",
});
/** @typedef {typeof TopicState[keyof typeof TopicState]} TopicStateName */

// Reconnect delays, in ms: the first is at most BASE, each failure doubles that, up to CAP.
const DEFAULT_BACKOFF_BASE = 250;
const DEFAULT_BACKOFF_CAP = 10_000;
/**
 * How long `request()` waits for its reply unless told otherwise, in ms.
 * @type {10000}
 */
export const DEFAULT_REQUEST_TIMEOUT = 10_000;
/** The close code of a socket replaced because a reply did not come (a 4xxx is the app's). */
export const NO_REPLY_CODE = 4408;
// The longest delay timers keep: browsers and Node turn a longer one into ~0.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Why `MultiplexWebSocket.request()` rejected: `"error"` = the handler raised (`code` and
 * `reason` are the close code and reason the error would have closed the topic with);
 * `"timeout"` = no reply in time; `"closed"` = the topic closed, or the connection was lost
 * while the request was in flight (it may or may not have been handled).
 */
export class RequestError extends Error {
  /**
   * @param {"error" | "timeout" | "closed"} kind
   * @param {string} reason
   * @param {number | null} [code]
   */
  constructor(kind, reason, code = null) {
    super(code === null ? `request ${kind}: ${reason}` : `request error ${code}: ${reason}`);
    this.name = "RequestError";
    /** @readonly */
    this.kind = kind;
    /** @readonly */
    this.code = code;
    /** @readonly */
    this.reason = reason;
  }
}

/**
 * A request waiting for its reply (`timer`: its timeout's, null for `Infinity`).
 * @typedef {object} PendingRequest
 * @property {(data: string | ArrayBuffer | Blob) => void} resolve
 * @property {(error: RequestError) => void} reject
 * @property {unknown} timer
 */

/**
 * Options of a topic's shared socket; only the first topic of an origin's socket sets them.
 * @typedef {object} MultiplexOptions
 * @property {new (url: string, protocols: string[]) => WebSocket} [WebSocket] WebSocket
 *   constructor to use instead of `globalThis.WebSocket` (tests, Node)
 * @property {() => number} [random] source of the backoff jitter, in [0, 1)
 * @property {(callback: () => void, ms: number) => unknown} [setTimeout]
 * @property {(id: any) => void} [clearTimeout]
 * @property {number} [backoffBase] ms; delay = random() × min(backoffCap, backoffBase × 2^attempt)
 * @property {number} [backoffCap] ms
 * @property {Iterable<number>} [stopCodes] physical close codes after which it gives up
 * @property {boolean} [extensions] ask for the protocol extensions (per-frame metadata, which
 *   `request()` needs, stream positions, which recovery after a reconnect needs, and presence)
 *   on every subscription; default true. False for a server that speaks only plain
 *   rocket-multiplex.
 * @property {number} [replyTimeout] ms a SUBSCRIBE or UNSUBSCRIBE waits for its reply; past
 *   it the socket is replaced (closed with {@link NO_REPLY_CODE}, reconnected with backoff,
 *   every topic subscribed again). Default `Infinity`: none. Only for apps whose handlers
 *   answer quickly: the server reads a socket's frames in order, so a slow message handler
 *   delays the reply too.
 */

/**
 * A user's close waiting for the server's OK.
 * @typedef {object} CloseRequest
 * @property {MultiplexWebSocket} target
 * @property {number | null} code
 * @property {string | null} reason
 */

/**
 * origin -> MultiplexSocket[]: normally one; a second only for a topic already open on the first.
 * @type {Map<string, MultiplexSocket[]>}
 */
const registry = new Map();

/**
 * @param {string | ArrayBuffer | Blob} data
 * @param {string} origin
 * @returns {MessageEvent}
 */
function makeMessageEvent(data, origin) {
  if (typeof MessageEvent === "function") return new MessageEvent("message", { data, origin });
  const event = new Event("message");
  Object.defineProperties(event, { data: { value: data }, origin: { value: origin } });
  return /** @type {MessageEvent} */ (event);
}

/**
 * @param {boolean} wasRecovering
 * @param {boolean} recovered
 * @returns {MultiplexSubscribedEvent}
 */
function makeSubscribedEvent(wasRecovering, recovered) {
  const event = new Event("subscribed");
  Object.defineProperties(event, {
    wasRecovering: { value: wasRecovering, enumerable: true },
    recovered: { value: recovered, enumerable: true },
  });
  return /** @type {MultiplexSubscribedEvent} */ (event);
}

/**
 * @param {PresenceChange[]} joins
 * @param {PresenceChange[]} leaves
 * @returns {MultiplexPresenceEvent}
 */
function makePresenceEvent(joins, leaves) {
  const event = new Event("presence");
  Object.defineProperties(event, {
    joins: { value: Object.freeze(joins), enumerable: true },
    leaves: { value: Object.freeze(leaves), enumerable: true },
  });
  return /** @type {MultiplexPresenceEvent} */ (event);
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isRecord(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Freeze parsed JSON all the way down: the info a presence list shares with the app can then
 * be handed out as is. A loop, not recursion: the server's JSON may be deeply nested.
 * @param {unknown} value
 * @returns {unknown}
 */
function deepFreeze(value) {
  const stack = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === "object" && item !== null && !Object.isFrozen(item)) {
      Object.freeze(item);
      for (const child of Object.values(item)) stack.push(child); // not push(...): a long array
    }
  }
  return value;
}

/**
 * The clients of a presence payload, `{ ID: { user, info }, … }`, by id; null if it is not an
 * object. An entry that is not an object is skipped, a user that is not a string is null: a
 * server bug costs that entry, not the list.
 * @param {unknown} value
 * @returns {Map<string, PresenceChange> | null}
 */
function readClients(value) {
  if (!isRecord(value)) return null;
  /** @type {Map<string, PresenceChange>} */
  const clients = new Map();
  for (const [clientId, entry] of Object.entries(value)) {
    if (!isRecord(entry)) continue;
    const user = typeof entry.user === "string" ? entry.user : null;
    clients.set(clientId, Object.freeze({ clientId, user, info: deepFreeze(entry.info ?? null) }));
  }
  return clients;
}

/**
 * Whether two clients' user and info are the same (a join repeating what is known changes
 * nothing). Info is parsed JSON: its text compares it.
 * @param {PresenceChange} a
 * @param {PresenceChange} b
 */
function sameClient(a, b) {
  return a.user === b.user && JSON.stringify(a.info) === JSON.stringify(b.info);
}

/**
 * The `presence` group of a client: its user's, or its own for a client without a user.
 * @param {PresenceChange} client
 */
function groupKey(client) {
  return client.user !== null ? `u:${client.user}` : `c:${client.clientId}`;
}

/**
 * The stream position that `epoch` and `offset` items name, or null if either is missing or
 * malformed (read as a `since` value is, so that what is kept can be sent back as one).
 * @param {string | undefined} epoch
 * @param {string | undefined} offset
 * @returns {import("./multiplex-codec.js").StreamPosition | null}
 */
function readPosition(epoch, offset) {
  if (epoch === undefined || offset === undefined) return null;
  try {
    return parseSince(`${epoch}:${offset}`);
  } catch (error) {
    if (error instanceof ProtocolError) return null;
    throw error;
  }
}

/**
 * @param {number} code
 * @param {string} reason
 * @param {boolean} wasClean
 * @returns {CloseEvent}
 */
function makeCloseEvent(code, reason, wasClean) {
  if (typeof CloseEvent === "function") return new CloseEvent("close", { code, reason, wasClean });
  const event = new Event("close");
  Object.defineProperties(event, {
    code: { value: code },
    reason: { value: reason },
    wasClean: { value: wasClean },
  });
  return /** @type {CloseEvent} */ (event);
}

/** @param {string | URL} url */
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
   * @param {MultiplexOptions} [options]
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
    this._backoffBase = options.backoffBase ?? DEFAULT_BACKOFF_BASE;
    this._backoffCap = options.backoffCap ?? DEFAULT_BACKOFF_CAP;
    this._stopCodes = new Set(options.stopCodes ?? DEFAULT_STOP_CODES);
    this._extensions = options.extensions ?? true;
    this._setTimer = options.setTimeout ?? ((callback, ms) => setTimeout(callback, ms));
    this._clearTimer = options.clearTimeout ?? ((id) => clearTimeout(id));
    this._replyTimeout = Number(options.replyTimeout ?? Infinity);
    /** @type {MultiplexSocketState} */
    this._state = SocketState.IDLE;
    // Full jitter: a server back after an outage is not hit by every client at the same moment.
    this._retry = new RetryTimer(
      () => this._connect(),
      (tries) => this._random() * Math.min(this._backoffCap, this._backoffBase * 2 ** tries),
      { setTimeout: options.setTimeout, clearTimeout: options.clearTimeout },
    );
    /** @type {WebSocket | null} */
    this._ws = null;
    /**
     * Topics the user wants, in the order they are tried as the connect URL.
     * @type {Map<string, MultiplexWebSocket>}
     */
    this._wanted = new Map();
    /**
     * What the server knows of each topic. Kept apart from _wanted so that a reply always finds
     * the state its request left, whatever the user did in between (close while subscribing,
     * reopen while unsubscribing).
     * @type {Map<string, TopicStateName>}
     */
    this._server = new Map();
    /**
     * The timers of the SUBSCRIBEs and UNSUBSCRIBEs waiting for their reply, by topic.
     * @type {Map<string, unknown>}
     */
    this._replyTimers = new Map();
    /**
     * The topic each SUBSCRIBE in flight was sent for: one closed and opened again as a new
     * object meanwhile must not inherit that subscription (its `since=`, its replay).
     * @type {Map<string, MultiplexWebSocket>}
     */
    this._askers = new Map();
    /** The topic whose options the connect URL carries. @type {MultiplexWebSocket | null} */
    this._connectTarget = null;
    /**
     * User closes waiting for the server's OK.
     * @type {Map<string, CloseRequest>}
     */
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

  /** Failed connections in a row; reset once a connection opens. */
  get attempt() {
    return this._retry.tries;
  }

  /** @param {MultiplexSocketState} state */
  _setState(state) {
    if (state === this._state) return;
    this._state = state;
    // From a microtask, like the browser's own events from a task: a listener never runs in
    // the middle of a step of this state machine (it may open or close topics).
    const event = /** @type {Event & { state: MultiplexSocketState }} */ (new Event("statechange"));
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

  /**
   * @param {MultiplexWebSocket} target
   * @param {string} origin
   * @param {MultiplexOptions} options
   */
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

  /** @param {MultiplexWebSocket} target */
  _add(target) {
    this._wanted.set(target._topic, target);
    if (this.state === SocketState.IDLE) this._connect(true);
    else this._reconcile(target._topic);
    // "connecting" and "waiting": every wanted topic is subscribed once the socket opens.
  }

  _connect(fromConstructor = false) {
    const first = this._wanted.values().next().value;
    if (!first) {
      this._finish();
      return;
    }
    this._connectTarget = first;
    this._setState(SocketState.CONNECTING);
    let url = first.url;
    const options = this._subscribeOptions(first);
    if (options) {
      // The connect topic is subscribed by the handshake: its options ride on the URL. Appended
      // as text: URLSearchParams would re-serialise the topic's own query (%20 as +, ~ as %7E),
      // and the server would then name the topic differently. Items need no escaping in a query.
      // (No fragment: resolveUrl dropped it, so a `?` starts the query.)
      const separator = !url.includes("?") ? "?" : url.endsWith("?") ? "" : "&";
      url += `${separator}${OPTIONS_PARAM}=${encodeItems(options)}`;
    }
    let ws;
    try {
      ws = new this._WebSocket(url, [SUBPROTOCOL]);
    } catch (error) {
      // Only a URL the browser refuses (or a CSP) gets here; retrying would not help.
      if (fromConstructor) {
        // Nobody listens yet: let `new MultiplexWebSocket()` throw, as `new WebSocket()` does.
        this._wanted.clear();
        this._finish();
        throw error;
      }
      this._stop(1006, String(/** @type {any} */ (error)?.message ?? error), false, true);
      return;
    }
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (event) => this._onMessage(ws, event);
    ws.onclose = (event) => this._onClose(ws, event);
    ws.onerror = () => {}; // a close event always follows; that is where we act
    this._ws = ws;
  }

  /** @param {string | Uint8Array} frame */
  _send(frame) {
    // Every Uint8Array the codec builds has its own ArrayBuffer, never a SharedArrayBuffer.
    const data = /** @type {string | Uint8Array<ArrayBuffer>} */ (frame);
    /** @type {WebSocket} */ (this._ws).send(data);
  }

  /**
   * The options to subscribe `target` with, or null for a plain subscription; notes on
   * `target` whether they ask to recover (for its `subscribed` event).
   * @param {MultiplexWebSocket} target
   * @returns {Record<string, string> | null}
   */
  _subscribeOptions(target) {
    target._recovering = false;
    if (!this._extensions) return null;
    /** @type {Record<string, string>} */
    const options = { [META]: "", [POSITIONS]: "", [PRESENCE]: "" };
    const position = target._position;
    if (position !== null) {
      options[SINCE] = encodeSince(position.epoch, position.offset);
      target._recovering = true;
    }
    return options;
  }

  /**
   * Set (or, `undefined`, forget) what the server knows of `topic`. A SUBSCRIBE or
   * UNSUBSCRIBE in flight waits for its reply `replyTimeout` ms at most.
   * @param {string} topic
   * @param {TopicStateName | undefined} state
   * @param {MultiplexWebSocket | null} [asker] the topic a SUBSCRIBE is sent for (given with
   *   SUBSCRIBING)
   */
  _track(topic, state, asker = null) {
    if (state === TopicState.SUBSCRIBING) this._askers.set(topic, /** @type {MultiplexWebSocket} */ (asker));
    else this._askers.delete(topic);
    const timer = this._replyTimers.get(topic);
    if (timer !== undefined) {
      this._clearTimer(timer);
      this._replyTimers.delete(topic);
    }
    if (state === undefined) {
      this._server.delete(topic);
      return;
    }
    this._server.set(topic, state);
    const ms = this._replyTimeout;
    if (state !== TopicState.SUBSCRIBED && ms <= MAX_TIMER_MS) {
      const ws = this._ws;
      this._replyTimers.set(topic, this._setTimer(() => this._noReply(ws, topic), ms));
    }
  }

  /** Forget what the server knew of every topic: the connection that told it is gone. */
  _forgetServer() {
    for (const timer of this._replyTimers.values()) this._clearTimer(timer);
    this._replyTimers.clear();
    this._askers.clear();
    this._server.clear();
  }

  /**
   * No reply came in time. The server answers a socket's frames in order, so the whole
   * socket is stuck, not the topic (a guard waiting on a dead database, or a connection the
   * network dropped without a word): replace it, as a lost connection is.
   * @param {WebSocket | null} ws
   * @param {string} topic
   */
  _noReply(ws, topic) {
    this._replyTimers.delete(topic);
    if (ws === null || ws !== this._ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    const asked = this._server.get(topic) === TopicState.UNSUBSCRIBING ? "UNSUBSCRIBE" : "SUBSCRIBE";
    const reason = `no reply to ${asked} ${topic} within ${this._replyTimeout} ms`;
    try {
      ws.close(NO_REPLY_CODE, "no reply");
    } catch {
      // Closing already: it is being replaced either way.
    }
    this._onClose(ws, { code: 1006, reason, wasClean: false });
  }

  /**
   * Send whatever brings the server's view of `topic` one step closer to the user's.
   * @param {string} topic
   */
  _reconcile(topic) {
    if (this.state !== SocketState.OPEN) return;
    const status = this._server.get(topic);
    if (this._wanted.has(topic)) {
      if (status === undefined) {
        const target = /** @type {MultiplexWebSocket} */ (this._wanted.get(topic));
        this._track(topic, TopicState.SUBSCRIBING, target);
        this._send(encodeSubscribe(topic, this._subscribeOptions(target)));
      }
    } else if (status === TopicState.SUBSCRIBED) {
      const request = this._closing.get(topic);
      this._track(topic, TopicState.UNSUBSCRIBING);
      this._send(encodeUnsubscribe(topic, request?.code ?? null, request?.reason ?? null));
    }
    // SUBSCRIBING / UNSUBSCRIBING: wait for the reply, which calls back here.
  }

  /** @param {WebSocket} ws */
  _onOpen(ws) {
    if (ws !== this._ws) return;
    this._setState(SocketState.OPEN);
    this._retry.reset();
    const first = /** @type {MultiplexWebSocket} */ (this._connectTarget)._topic;
    // The server subscribes the connect URL itself; with options, it confirms them with an OK
    // (its first frame), and the topic opens then, as a SUBSCRIBEd one does.
    this._track(first, this._extensions ? TopicState.SUBSCRIBING : TopicState.SUBSCRIBED, this._connectTarget);
    for (const topic of [first, ...this._wanted.keys()]) this._reconcile(topic);
    if (!this._extensions) this._wanted.get(first)?._open({});
  }

  /**
   * @param {WebSocket} ws
   * @param {MessageEvent} event
   */
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
        if (frame.action === "SUBSCRIBE") this._subscribed(frame.params[0], frame.params[1] ?? "");
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

  /**
   * @param {string} topic
   * @param {string} granted the OK's options field: what the server speaks on this topic, and
   *   where a positions subscription starts
   */
  _subscribed(topic, granted) {
    const state = this._server.get(topic);
    if (state === undefined) {
      // The server subscribed the socket itself (Broker.subscribe): declined, so that it does
      // not stay subscribed unseen, and a topic the page opens later is not refused as
      // Already Subscribed. The UNSUBSCRIBE's OK subscribes it again if it is wanted by then.
      this._track(topic, TopicState.UNSUBSCRIBING);
      this._send(encodeUnsubscribe(topic, null, null));
      return;
    }
    if (state !== TopicState.SUBSCRIBING) return;
    const asker = this._askers.get(topic);
    this._track(topic, TopicState.SUBSCRIBED);
    /** @type {Record<string, string>} */
    let items = {};
    try {
      items = parseItems(granted);
    } catch {
      // A server bug: treat the topic as plain rocket-multiplex.
    }
    const target = this._wanted.get(topic);
    if (target && target !== asker) {
      // Closed while subscribing and opened again as another object: this subscription is
      // the old one's (its recovery, its replay). Undo it; the OK of that starts the new one.
      this._track(topic, TopicState.UNSUBSCRIBING);
      this._send(encodeUnsubscribe(topic, null, null));
    } else if (target) target._open(items);
    else this._reconcile(topic); // closed while subscribing: undo it now
  }

  /** @param {string} topic */
  _unsubscribed(topic) {
    if (this._server.get(topic) !== TopicState.UNSUBSCRIBING) return;
    this._track(topic, undefined);
    const request = this._closing.get(topic);
    this._closing.delete(topic);
    this._reconcile(topic); // reopened meanwhile: subscribe again
    this._maybeFinish();
    request?.target._closed(request.code ?? 1000, request.reason ?? "", true);
  }

  /**
   * @param {string} topic
   * @param {string} reason
   */
  _refused(topic, reason) {
    if (this._server.get(topic) !== TopicState.SUBSCRIBING) return;
    const asker = this._askers.get(topic);
    this._track(topic, undefined);
    const target = this._wanted.get(topic);
    if (target && target !== asker) {
      this._reconcile(topic); // refused for an object closed since: ask for the new one
      return;
    }
    this._wanted.delete(topic); // no retry: not even after a reconnect
    this._maybeFinish();
    target?._fail(reason);
  }

  /**
   * @param {string} topic
   * @param {number} code
   * @param {string} reason
   */
  _serverClosed(topic, code, reason) {
    const state = this._server.get(topic);
    if (state === undefined) return;
    this._track(topic, undefined);
    const request = this._closing.get(topic);
    let target;
    if (request) {
      this._closing.delete(topic);
      target = request.target;
    } else if (state !== TopicState.UNSUBSCRIBING) {
      target = this._wanted.get(topic);
      this._wanted.delete(topic);
    }
    // Else the user dropped that subscription before it opened, and a topic wanted now is a
    // reopened one waiting for our UNSUBSCRIBE: the close is not its own.
    this._reconcile(topic); // a reopened topic waiting for our UNSUBSCRIBE to finish
    this._maybeFinish();
    target?._closed(code, reason, true);
  }

  /**
   * @param {WebSocket} ws
   * @param {Partial<CloseEvent> | undefined} event
   */
  _onClose(ws, event) {
    if (ws !== this._ws) return;
    const wasOpen = this.state === SocketState.OPEN;
    this._ws = null;
    this._forgetServer();
    const { code = 1006, reason = "", wasClean = false } = event ?? {};
    if (this._stopCodes.has(code)) {
      this._stop(code, reason, wasClean, false);
      return;
    }
    const closing = [...this._closing.values()];
    this._closing.clear();
    for (const target of this._wanted.values()) target._lost();
    const first = /** @type {MultiplexWebSocket} */ (this._connectTarget)._topic;
    if (!wasOpen && this._wanted.has(first)) {
      // A refused handshake (e.g. a guard on the connect URL) would otherwise block every other
      // topic forever: try the next one, and this one again by SUBSCRIBE, which reports the
      // server's real reason as ERR.
      const target = /** @type {MultiplexWebSocket} */ (this._wanted.get(first));
      this._wanted.delete(first);
      this._wanted.set(first, target);
    }
    if (this._wanted.size === 0) this._finish();
    else {
      this._setState(SocketState.WAITING);
      this._retry.scheduleTimeout();
    }
    for (const request of closing) request.target._closed(1006, "", false);
  }

  /**
   * The server said "do not come back" (or the socket cannot be built): close every topic.
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   * @param {boolean} withError
   */
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
    if (this.state === SocketState.CLOSED) return;
    this._setState(SocketState.CLOSED);
    const sockets = registry.get(this.origin) ?? [];
    const index = sockets.indexOf(this);
    if (index >= 0) sockets.splice(index, 1);
    if (sockets.length === 0) registry.delete(this.origin);
    this._retry.cancel();
    this._forgetServer();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      ws.close(1000);
    }
  }

  /**
   * The user closed a topic that is not open: forget it.
   * @param {MultiplexWebSocket} target
   */
  _drop(target) {
    if (this._wanted.get(target._topic) !== target) return;
    this._wanted.delete(target._topic);
    this._reconcile(target._topic);
    this._maybeFinish();
  }

  /**
   * The user closed an open topic: UNSUBSCRIBE, and report the close on the server's OK.
   * @param {MultiplexWebSocket} target
   * @param {number | null} code
   * @param {string | null} reason
   */
  _unsubscribe(target, code, reason) {
    this._wanted.delete(target._topic);
    this._closing.set(target._topic, { target, code, reason });
    this._reconcile(target._topic);
  }
}

/**
 * What `send` and `request` put on the wire: a string, or the bytes of a binary message.
 * @param {unknown} data
 * @returns {string | Uint8Array}
 */
function toPayload(data) {
  if (typeof data === "string") return data;
  // Views, not copies: a frame sent now is encoded (copied) at once, and one kept for later is
  // copied by `buffered`.
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof Blob === "function" && data instanceof Blob) {
    throw new TypeError("MultiplexWebSocket cannot send a Blob; send await blob.arrayBuffer()");
  }
  return String(data); // as WebSocket: any other value as text
}

/**
 * A payload to keep until the topic opens: a copy of bytes, as WebSocket.send takes one (later
 * changes to the caller's buffer are not sent).
 * @param {string | Uint8Array} payload
 * @returns {string | Uint8Array}
 */
function buffered(payload) {
  return typeof payload === "string" ? payload : payload.slice();
}

/**
 * One topic of a shared rocket-multiplex socket, used like a browser `WebSocket`.
 *
 * Differences from `WebSocket`, all deliberate: sends made while CONNECTING are buffered (and
 * flushed in order on open) instead of throwing; a lost connection does not close the topic but
 * takes it back to CONNECTING while the shared socket reconnects; `send(Blob)` is refused
 * (reading a Blob is asynchronous and would reorder frames); `protocol` is always `""`.
 * Added: every successful (re)subscription fires `subscribed` right after `open`, telling
 * whether the publications missed while away are replayed (`recovered`); `position`; on a
 * topic with presence, `clientId`, `presence` and the `presence` event.
 */
export class MultiplexWebSocket extends EventTarget {
  /**
   * @param {string | URL} url `ws:`/`wss:` URL, or a URL relative to `location` in a browser.
   *   Its path and query (as the URL parser normalises them) name the topic on the wire.
   * @param {MultiplexOptions} [options] used when this topic's origin
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
    /** @type {ReadyState} */
    this._readyState = CONNECTING;
    /** @type {"arraybuffer" | "blob"} */
    this._binaryType = "arraybuffer";
    /**
     * Messages sent while CONNECTING, in order, each with its request id (or null); framed on
     * open, when the server has said whether this subscription carries metadata.
     * @type {[string | Uint8Array, number | null][]}
     */
    this._buffer = [];
    /** True while the server frames this subscription with metadata (`meta` granted). */
    this._meta = false;
    /** True while publications come with their stream positions (`positions` granted). */
    this._positions = false;
    /**
     * This topic's stream position: the last publication delivered (or where the subscription
     * started). Kept across reconnects, to ask for what was missed (`since`); a topic without
     * history has none.
     * @type {import("./multiplex-codec.js").StreamPosition | null}
     */
    this._position = null;
    /** Whether the subscription in progress asked to recover from `_position`. */
    this._recovering = false;
    /** True while the server sends this topic's presence (`presence` granted). */
    this._presenceOn = false;
    /**
     * This client's id in the topic's presence, from the OK. Kept with the list it belongs to
     * while reconnecting, until the next OK.
     * @type {string | null}
     */
    this._clientId = null;
    /**
     * Who is on the topic, by client id, in order of arrival. Kept across a reconnect (no
     * flicker), until the new subscription's `presence=state` replaces it.
     * @type {Map<string, PresenceChange>}
     */
    this._clients = new Map();
    /**
     * The same clients grouped as `presence` lists them, one group per user (or per client
     * without one), in order of first appearance.
     * @type {Map<string, Map<string, PresenceChange>>}
     */
    this._groups = new Map();
    /**
     * `presence` as last built, or null once the clients changed: the same frozen array until
     * then, so that an app may compare it by identity.
     * @type {readonly PresenceEntry[] | null}
     */
    this._presenceList = null;
    /** @type {Map<number, PendingRequest>} */
    this._requests = new Map();
    this._nextRequest = 1;
    /** @type {((event: Event) => void) | null} */
    this.onopen = null;
    /** @type {((event: MessageEvent) => void) | null} */
    this.onmessage = null;
    /** @type {((event: CloseEvent) => void) | null} */
    this.onclose = null;
    /** @type {((event: Event) => void) | null} */
    this.onerror = null;
    /** @type {((event: MultiplexSubscribedEvent) => void) | null} */
    this.onsubscribed = null;
    /** @type {((event: MultiplexPresenceEvent) => void) | null} */
    this.onpresence = null;
    for (const type of /** @type {const} */ (["open", "message", "close", "error", "subscribed", "presence"])) {
      this.addEventListener(type, (event) => {
        const handler = /** @type {((event: Event) => unknown) | null} */ (this[`on${type}`]);
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

  /**
   * Always `""`: the physical socket's subprotocol is the multiplexing one.
   * @returns {""}
   */
  get protocol() {
    return "";
  }

  /** @returns {""} always */
  get extensions() {
    return "";
  }

  /** Bytes of frames buffered until this topic opens. */
  get bufferedAmount() {
    let total = 0;
    for (const [payload] of this._buffer) {
      total += typeof payload === "string" ? utf8Length(payload) : payload.length;
    }
    return total;
  }

  /** `"arraybuffer"` (default) or `"blob"`: the type of binary `message` data. */
  get binaryType() {
    return this._binaryType;
  }

  /** @param {"arraybuffer" | "blob"} value */
  set binaryType(value) {
    // Like WebSocket: an unknown value is ignored.
    if (value === "arraybuffer" || value === "blob") this._binaryType = value;
  }

  /** The shared physical socket this topic rides on. */
  get socket() {
    return this._socket;
  }

  /**
   * Where this topic's stream stands for this client: the position of the last publication
   * delivered, or where the subscription started; kept across reconnects to recover from.
   * `null` before the first subscription, and on a topic without history (or without
   * `extensions`).
   * @returns {import("./multiplex-codec.js").StreamPosition | null}
   */
  get position() {
    const position = this._position;
    return position === null ? null : { epoch: position.epoch, offset: position.offset };
  }

  /**
   * This client's id in the topic's presence (the same id appears in `presence`), given by the
   * subscription's OK; `null` on a topic without presence, and once closed.
   * @returns {string | null}
   */
  get clientId() {
    return this._clientId;
  }

  /**
   * Who is on the topic, on every server worker: one entry per user, with all of that user's
   * clients (one per tab or device), and one per client without a user; in order of first
   * appearance. Frozen, and the same array until it changes (the `presence` event). Empty on a
   * topic without presence, and once closed; while reconnecting, the last list known, until
   * the new subscription's state replaces it.
   * @returns {readonly PresenceEntry[]}
   */
  get presence() {
    if (this._presenceList === null) {
      /** @type {PresenceEntry[]} */
      const list = [];
      for (const group of this._groups.values()) {
        const members = [...group.values()];
        const clients = members.map(({ clientId, info }) => Object.freeze({ clientId, info }));
        list.push(Object.freeze({ user: members[0].user, clients: Object.freeze(clients) }));
      }
      this._presenceList = Object.freeze(list);
    }
    return this._presenceList;
  }

  /**
   * Send a text (string) or binary (ArrayBuffer, typed array, DataView) message on this topic.
   * Buffered while CONNECTING; discarded once CLOSING or CLOSED, as WebSocket does.
   * @param {unknown} data any other value but a Blob is sent as text, as `String(data)`
   */
  send(data) {
    const payload = toPayload(data);
    if (this._readyState === CONNECTING) this._buffer.push([buffered(payload), null]);
    else if (this._readyState === OPEN) this._socket._send(this._frame(payload, null));
  }

  /**
   * Send `data` as a request and wait for the handler's answer: resolves with the reply's data
   * (as `MessageEvent.data`: a string, or per `binaryType`). Rejects with a {@link RequestError}:
   * `"error"` when the handler raised, `"timeout"`, or `"closed"` when the topic closes or the
   * connection is lost first. Sent on open while CONNECTING, like `send`.
   * @param {unknown} data as for `send`
   * @param {{ timeout?: number }} [options] `timeout` in ms (default 10 000; `Infinity`: none)
   * @returns {Promise<string | ArrayBuffer | Blob>}
   */
  request(data, options = {}) {
    const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT;
    return new Promise((resolve, reject) => {
      // Inside the executor: a payload it cannot send (a Blob) rejects, as a promise-returning
      // call should, rather than throwing past `.catch`.
      const payload = toPayload(data);
      if (this._readyState === CLOSING || this._readyState === CLOSED) {
        reject(new RequestError("closed", "the topic is closed"));
        return;
      }
      if (this._readyState === OPEN && !this._meta) {
        reject(new RequestError("error", "the server does not take requests on this topic"));
        return;
      }
      const id = this._nextRequest++;
      const socket = this._socket;
      // Infinity waits for the reply (or the close) however long it takes; timers clamp a
      // longer delay than 2**31 - 1 ms to ~0, so a finite one is capped there (24.8 days).
      const ms = Number(timeout);
      const timer = ms !== Infinity
        ? socket._setTimer(() => {
            // A request given up on before it was sent is never sent: the app may ask again,
            // and the handler must not run twice. (_settle's clearTimer is then a no-op.)
            this._buffer = this._buffer.filter(([, queued]) => queued !== id);
            this._settle(id)?.reject(new RequestError("timeout", `no reply within ${timeout} ms`));
          }, Math.min(ms, MAX_TIMER_MS))
        : null;
      this._requests.set(id, { resolve, reject, timer });
      if (this._readyState === CONNECTING) this._buffer.push([buffered(payload), id]);
      else socket._send(this._frame(payload, id));
    });
  }

  /**
   * @param {string | Uint8Array} payload
   * @param {number | null} id the request id, or null for a plain message
   * @returns {string | Uint8Array}
   */
  _frame(payload, id) {
    if (this._meta) {
      /** @type {Record<string, number>} */
      const items = id === null ? {} : { id };
      return typeof payload === "string"
        ? encodeMetaText(this._topic, items, payload)
        : encodeMetaBinary(this._topic, items, payload);
    }
    return typeof payload === "string" ? encodeText(this._topic, payload) : encodeBinary(this._topic, payload);
  }

  /**
   * Settle every request: the topic closed, or the connection carrying them was lost.
   * @param {string} reason
   * @param {boolean} [sentOnly] keep the requests still buffered (they go out after a reconnect)
   */
  _abandonRequests(reason, sentOnly = false) {
    const buffered = new Set(sentOnly ? this._buffer.map(([, id]) => id) : []);
    for (const id of [...this._requests.keys()]) {
      if (!buffered.has(id)) this._settle(id)?.reject(new RequestError("closed", reason));
    }
  }

  /**
   * Take request `id` out of the pending ones (and stop its timer), to settle it: the one way
   * a request leaves, so that it settles once. Undefined when it has settled already.
   * @param {number} id
   * @returns {PendingRequest | undefined}
   */
  _settle(id) {
    const request = this._requests.get(id);
    if (request) {
      this._requests.delete(id);
      if (request.timer !== null) this._socket._clearTimer(request.timer);
    }
    return request;
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
      if (utf8Length(reason) > MAX_REASON_BYTES) {
        throw new DOMException(`close reason over ${MAX_REASON_BYTES} bytes`, "SyntaxError");
      }
      code ??= 1000; // as WebSocket.close: a reason implies 1000
    }
    if (this._readyState === CLOSING || this._readyState === CLOSED) return;
    const wasOpen = this._readyState === OPEN;
    this._readyState = CLOSING;
    this._buffer = [];
    this._abandonRequests("the topic was closed");
    if (wasOpen) {
      this._socket._unsubscribe(this, code ?? null, reason ?? null);
    } else {
      // Like a WebSocket closed before it opened: an unclean 1006, fired asynchronously.
      this._socket._drop(this);
      queueMicrotask(() => this._closed(1006, "", false));
    }
  }

  /**
   * The subscription succeeded: open, and fire `open` then `subscribed`. Both come from the
   * OK, so before any publication the server replays after it, and before the presence state
   * that follows it.
   * @param {Record<string, string>} granted the OK's items (`{}` for a plain subscription)
   */
  _open(granted) {
    if (this._readyState !== CONNECTING) return;
    this._readyState = OPEN;
    const meta = Object.hasOwn(granted, META);
    this._meta = meta;
    // The OK's position is where this subscription starts, recovered or not; without
    // `positions` the topic has no history, hence no position to recover from later.
    this._positions = meta && Object.hasOwn(granted, POSITIONS);
    // An OK with no position (the stream could not be read: recovered=false) keeps the one
    // held, so that the next resubscription still asks to recover from it.
    this._position = this._positions ? readPosition(granted.epoch, granted.offset) ?? this._position : null;
    this._presenceOn = meta && Object.hasOwn(granted, PRESENCE);
    this._clientId = this._presenceOn ? granted.client ?? null : null;
    const wasRecovering = this._recovering;
    this._recovering = false;
    const buffered = this._buffer;
    this._buffer = [];
    for (const [payload, id] of buffered) {
      if (id !== null && !meta) {
        this._settle(id)?.reject(new RequestError("error", "the server does not take requests on this topic"));
        continue;
      }
      this._socket._send(this._frame(payload, id));
    }
    this.dispatchEvent(new Event("open"));
    // As for messages: nothing more once a listener has closed the topic.
    if (this._readyState !== OPEN) return;
    const recovered = wasRecovering && this._positions && granted.recovered === "true";
    this.dispatchEvent(makeSubscribedEvent(wasRecovering, recovered));
    // Presence no longer granted (the app changed while we were away): no state will come to
    // replace the list kept from the last connection, so everyone on it leaves now.
    if (this._readyState === OPEN && !this._presenceOn && this._clients.size > 0) {
      this._changePresence(new Map(), [...this._clients.keys()]);
    }
  }

  _lost() {
    if (this._readyState === OPEN) this._readyState = CONNECTING;
    // A reply can only come on the connection that carried the request.
    this._abandonRequests("the connection was lost", true);
  }

  /** @param {import("./multiplex-codec.js").DataFrame} frame */
  _message(frame) {
    let body = frame;
    if (this._meta) {
      let split;
      try {
        split = splitMeta(frame);
      } catch (error) {
        if (error instanceof ProtocolError) return; // a server bug; nothing to deliver
        throw error;
      }
      const { items } = split;
      body = split.text !== null
        ? { type: "data", topic: frame.topic, text: split.text, data: null }
        : { type: "data", topic: frame.topic, text: null, data: split.data };
      if (items.reply !== undefined) {
        this._reply(items, body);
        return;
      }
      // Presence frames update `presence`, never a message. Where presence was not granted the
      // item is one this subscription does not know, and is ignored like any such item.
      if (this._presenceOn && items[PRESENCE] !== undefined) {
        this._presenceFrame(items[PRESENCE], body);
        return;
      }
      if (this._positions && !this._advance(items)) return;
    }
    this.dispatchEvent(makeMessageEvent(this._data(body), this._origin));
  }

  /**
   * Track the stream position a publication carries (`offset=N[,epoch=E]`); false for one
   * delivered already (a replay overlapping what arrived live), which is dropped.
   * @param {Record<string, string>} items
   * @returns {boolean}
   */
  _advance(items) {
    // No offset: a message for this client only (or a broadcast the server did not store),
    // not a publication of the stream.
    if (items.offset === undefined) return true;
    const held = this._position;
    const next = readPosition(items.epoch ?? held?.epoch, items.offset);
    // Malformed (a server bug), or no epoch known yet (the OK had no position: the server
    // could not read the stream): deliver the payload, nothing to compare it with.
    if (next === null) return true;
    // An epoch on the frame is a new one (the stream was reset): its offsets start over, so
    // none is a duplicate. Otherwise an offset not past ours was delivered already.
    if (items.epoch === undefined && held !== null && next.offset <= held.offset) return false;
    this._position = next;
    return true;
  }

  /**
   * Apply a presence frame: `presence=state`, the whole list (once per subscription, right
   * after its OK: it replaces what the last connection left), or `presence=diff`, a batch of
   * `joins` and `leaves`. Diffs and the state may overlap: a join of a known client replaces
   * it, a leave of an unknown one is ignored. A malformed payload is a server bug, dropped.
   * @param {string} kind the `presence` item's value
   * @param {import("./multiplex-codec.js").DataFrame} frame its payload, JSON
   */
  _presenceFrame(kind, frame) {
    let body;
    try {
      body = JSON.parse(frame.text ?? new TextDecoder().decode(frame.data));
    } catch {
      return;
    }
    if (kind === "state") {
      const clients = readClients(body);
      if (clients === null) return;
      // Fired even when nothing changed: it tells that the list is current again.
      this._changePresence(clients, [...this._clients.keys()].filter((id) => !clients.has(id)), true);
    } else if (kind === "diff" && isRecord(body)) {
      const joins = readClients(body.joins ?? {});
      const leaves = body.leaves ?? {};
      if (joins === null || !isRecord(leaves)) return;
      this._changePresence(joins, Object.keys(leaves));
    }
    // Any other kind: one this client does not know yet; ignored like an unknown item.
  }

  /**
   * Apply joins then leaves (as Phoenix does: a client in both is gone), and fire `presence`
   * with what changed in the end, if anything did (or `always`).
   * @param {Map<string, PresenceChange>} joins
   * @param {string[]} leaves client ids
   * @param {boolean} [always]
   */
  _changePresence(joins, leaves, always = false) {
    /** @type {Map<string, PresenceChange | undefined>} */
    const before = new Map();
    for (const id of [...joins.keys(), ...leaves]) before.set(id, this._clients.get(id));
    for (const client of joins.values()) this._putClient(client);
    for (const id of leaves) this._removeClient(id);
    /** @type {PresenceChange[]} */
    const joined = [];
    /** @type {PresenceChange[]} */
    const left = [];
    for (const [id, was] of before) {
      const now = this._clients.get(id);
      // _putClient keeps the known object when nothing changed: identity tells.
      if (now !== undefined && now !== was) joined.push(now);
      else if (now === undefined && was !== undefined) left.push(was);
    }
    if (always || joined.length > 0 || left.length > 0) this.dispatchEvent(makePresenceEvent(joined, left));
  }

  /**
   * Add a client, or replace the known one of that id (keeping its place, unless its user
   * changed: then it moves to its new user's entry).
   * @param {PresenceChange} client
   */
  _putClient(client) {
    const known = this._clients.get(client.clientId);
    if (known !== undefined) {
      if (sameClient(known, client)) return;
      if (known.user !== client.user) this._removeClient(known.clientId);
    }
    this._clients.set(client.clientId, client);
    const key = groupKey(client);
    let group = this._groups.get(key);
    if (group === undefined) {
      group = new Map();
      this._groups.set(key, group);
    }
    group.set(client.clientId, client);
    this._presenceList = null;
  }

  /** @param {string} id */
  _removeClient(id) {
    const known = this._clients.get(id);
    if (known === undefined) return;
    this._clients.delete(id);
    const key = groupKey(known);
    const group = this._groups.get(key);
    group?.delete(id);
    if (group?.size === 0) this._groups.delete(key);
    this._presenceList = null;
  }

  /** The topic is closed: nobody is on it for this client any more (no event after close). */
  _forgetPresence() {
    this._presenceOn = false;
    this._clientId = null;
    this._clients.clear();
    this._groups.clear();
    this._presenceList = null;
  }

  /**
   * @param {import("./multiplex-codec.js").DataFrame} frame
   * @returns {string | ArrayBuffer | Blob}
   */
  _data(frame) {
    if (frame.text !== null) return frame.text;
    if (this._binaryType === "blob" && typeof Blob === "function") {
      // The physical socket's binaryType is "arraybuffer": its frames are never shared memory.
      return new Blob([/** @type {Uint8Array<ArrayBuffer>} */ (frame.data)]);
    }
    return frame.data.slice().buffer; // a copy: the frame's buffer also holds the topic
  }

  /**
   * @param {Record<string, string>} items the reply's metadata: `reply`, and `error` if it failed
   * @param {import("./multiplex-codec.js").DataFrame} frame its payload
   */
  _reply(items, frame) {
    const request = this._settle(Number(items.reply));
    if (!request) return; // timed out, or not ours: settled already
    if (items.error !== undefined) {
      const reason = frame.text ?? new TextDecoder().decode(frame.data);
      request.reject(new RequestError("error", reason, Number(items.error)));
    } else {
      request.resolve(this._data(frame));
    }
  }

  /** @param {string} reason */
  _fail(reason) {
    this._readyState = CLOSED;
    this._buffer = [];
    this._forgetPresence();
    this._abandonRequests("the subscription was refused");
    this.dispatchEvent(new Event("error"));
    this.dispatchEvent(makeCloseEvent(closeCodeForError(reason), reason, false));
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   */
  _closed(code, reason, wasClean) {
    if (this._readyState === CLOSED) return;
    this._readyState = CLOSED;
    this._buffer = [];
    this._forgetPresence();
    this._abandonRequests("the topic was closed");
    this.dispatchEvent(makeCloseEvent(code, reason, wasClean));
  }
}

// Read-only data properties of both the class and its prototype, as WebSocket's constants are;
// spelled out rather than looped over, so that the type checker sees them.
Object.defineProperty(MultiplexWebSocket, "CONNECTING", { value: CONNECTING, enumerable: true });
Object.defineProperty(MultiplexWebSocket, "OPEN", { value: OPEN, enumerable: true });
Object.defineProperty(MultiplexWebSocket, "CLOSING", { value: CLOSING, enumerable: true });
Object.defineProperty(MultiplexWebSocket, "CLOSED", { value: CLOSED, enumerable: true });
Object.defineProperty(MultiplexWebSocket.prototype, "CONNECTING", { value: CONNECTING, enumerable: true });
Object.defineProperty(MultiplexWebSocket.prototype, "OPEN", { value: OPEN, enumerable: true });
Object.defineProperty(MultiplexWebSocket.prototype, "CLOSING", { value: CLOSING, enumerable: true });
Object.defineProperty(MultiplexWebSocket.prototype, "CLOSED", { value: CLOSED, enumerable: true });
