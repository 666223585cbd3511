// @ts-check
// One room the page watches: a topic of the shared multiplexed socket, its log and members.
//
// Every Room is a `MultiplexWebSocket` to /rooms/{name}: all rooms of the page ride on ONE
// physical WebSocket, which the client reconnects (and resubscribes) by itself after a network
// drop or a server restart. Rooms keep history on the server: a resubscription that recovered
// (`subscribed` with `recovered`) is replayed what it missed, through the same message events.
// Otherwise (the first time, or too far behind) the room loads its history over HTTP; events
// that arrive meanwhile wait, so nothing is lost and nothing is shown twice (messages carry ids).
//
// The topic comes from chat-api.js, generated from the app's AsyncAPI document (`python -m
// wsroute typescript examples.chat.app:app --js`): `rooms.open()` gives a topic whose `send`
// takes a `Say` and whose messages arrive parsed, typed as the server's events. This file's
// JSDoc types are checked against it (`tsc -p examples/chat`).
//
// Members come from wsroute's presence (the room's route has `presence=True`): the socket keeps
// `presence`, the room's connections on every server worker grouped by user (two tabs of one
// user are one entry), and fires `presence` on each change. The room shows each user once,
// and notes "X joined" / "X left" only when a user's first connection arrives or their last
// one goes.
//
// Events (EventTarget): "entry" (detail: the new log entry), "reset" (the log was rebuilt),
// "members", "state", "problem" (detail: an error event from the server), "closed"
// (detail: { code, reason }).
import { MultiplexWebSocket } from "/wsroute/multiplex.js";
import { getHistory } from "./api.js";
import { rooms } from "./chat-api.js";

/** @import { Announcement, ChatMessage, RoomsMessage, User } from "./chat-api.js" */
/** @import { PresenceEntry } from "/wsroute/multiplex.js" */

/**
 * A line of the log: a message or an announcement from the server, or a notice of our own.
 * @typedef {object} Entry
 * @property {"message" | "announcement" | "notice"} kind
 * @property {number} [id] messages and announcements only
 * @property {User | null} [user] who said it (null for an announcement)
 * @property {string} text
 * @property {string} [at]
 * @property {"joined" | "left"} [change] a presence notice's
 * @property {number} [order] where it sorts in the log
 */

const MAX_ENTRIES = 500;

export class Room extends EventTarget {
  /** @param {string} name */
  constructor(name) {
    super();
    this.name = name;
    /** @type {Entry[]} Log entries, oldest first. */
    this.entries = [];
    /** @type {Set<number>} */
    this.ids = new Set();
    /** @type {User[]} Who is in the room, each user once, in order of arrival. */
    this.members = [];
    /** False until the first member list: that one is not news, except that we arrived. */
    this._knowsMembers = false;
    this.unread = 0;
    /** @type {User | null} */
    this.me = null;
    /** @type {number | null} */
    this.worker = null;
    this.maxLength = 500;
    /** Times in a row the server closed this room; reset when it opens. */
    this.closures = 0;
    /** @type {(() => void)[] | null} what arrived while the history loads (events, notices) */
    this._waiting = null;
    this._maxId = 0;
    this._notices = 0;
    this._leaving = false;
    this.topic = this._connect();
  }

  _connect() {
    const topic = rooms.open({ room: this.name });
    const socket = topic.socket;
    socket.addEventListener("open", () => this._opened());
    socket.addEventListener("subscribed", (event) => this._subscribed(event.recovered));
    socket.addEventListener("presence", () => this._presence());
    topic.onMessage((event) => this._received(event));
    socket.addEventListener("close", (event) => this._closed(event));
    // The shared physical socket connecting, open, or backing off: the room's status too.
    socket.socket.addEventListener("statechange", () => this._emit("state"));
    return topic;
  }

  /** The topic's `MultiplexWebSocket`. */
  get socket() {
    return this.topic.socket;
  }

  /** Enter the room again after the server closed it (the log is kept). */
  reopen() {
    if (this.state !== "closed" || this._leaving) return;
    this.topic = this._connect();
    this._emit("state");
  }

  /** "open", "connecting" (also while the shared socket reconnects) or "closed". */
  get state() {
    const ready = this.socket.readyState;
    if (ready === MultiplexWebSocket.OPEN) return "open";
    return ready === MultiplexWebSocket.CONNECTING ? "connecting" : "closed";
  }

  /** The shared physical socket's state: "open", "connecting", "waiting" (backoff) or "closed". */
  get connection() {
    return this.socket.socket.state;
  }

  /**
   * Send a chat message (buffered by the client while the topic reconnects).
   * @param {string} text
   */
  say(text) {
    this.topic.send({ text });
  }

  /**
   * Add a line of our own to the log (not from the server).
   * @param {string} text
   */
  note(text) {
    this._add({ kind: "notice", text }, true);
  }

  /** Leave the room: the server runs its leave handler and tells the others. */
  leave() {
    this._leaving = true;
    if (this.socket.readyState <= MultiplexWebSocket.OPEN) this.topic.close(1000, "left the room");
  }

  /**
   * @param {string} type
   * @param {unknown} [detail]
   */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _opened() {
    this.closures = 0;
    this._emit("state");
  }

  /** @param {boolean} recovered the server replays what this room missed while away */
  async _subscribed(recovered) {
    this._waiting = null;
    if (recovered) return;
    /** @type {(() => void)[]} */
    const waiting = [];
    this._waiting = waiting;
    const result = await getHistory(this.name);
    if (this._waiting !== waiting) return; // reopened meanwhile: that load wins
    this._waiting = null;
    if (result.ok) {
      let added = false;
      for (const item of result.data.messages) added = this._add(this._fromServer(item), false) || added;
      if (added) this._emit("reset");
    }
    for (const run of waiting) run();
  }

  /** @param {RoomsMessage} event */
  _received(event) {
    if (this._waiting !== null && event.type !== "hello" && event.type !== "error") {
      this._waiting.push(() => this._handle(event));
    } else {
      this._handle(event);
    }
  }

  /** @param {RoomsMessage} event */
  _handle(event) {
    switch (event.type) {
      case "hello":
        this.me = event.you;
        this.worker = event.worker;
        this.maxLength = event.max_length ?? this.maxLength;
        this._emit("state");
        return;
      case "message":
      case "announcement":
        this._add(this._fromServer(event), true);
        return;
      case "error":
        this._emit("problem", event);
        return;
      default:
        return; // a newer server: ignore what we do not know
    }
  }

  /**
   * @param {ChatMessage | Announcement} item
   * @returns {Entry}
   */
  _fromServer(item) {
    const user = item.type === "message" ? item.user : null;
    return { kind: item.type, id: item.id, user, text: item.text, at: item.at };
  }

  /**
   * Add an entry in order; messages are de-duplicated by id. Returns true when added.
   * Messages sort by id; a notice sorts right after the newest message seen when it arrived.
   * @param {Entry} entry
   * @param {boolean} live
   */
  _add(entry, live) {
    if (entry.id !== undefined) {
      if (this.ids.has(entry.id)) return false;
      this.ids.add(entry.id);
      entry.order = entry.id;
      this._maxId = Math.max(this._maxId, entry.id);
    } else {
      this._notices += 1;
      entry.order = this._maxId + this._notices * 1e-6;
    }
    let at = this.entries.length;
    while (at > 0 && /** @type {number} */ (this.entries[at - 1].order) > entry.order) at -= 1;
    this.entries.splice(at, 0, entry);
    const atEnd = at === this.entries.length - 1;
    if (this.entries.length > MAX_ENTRIES) {
      const dropped = this.entries.splice(0, this.entries.length - MAX_ENTRIES);
      for (const old of dropped) if (old.id !== undefined) this.ids.delete(old.id);
    }
    if (live) {
      if (entry.kind !== "notice") this.unread += 1;
      if (atEnd) this._emit("entry", entry);
      else this._emit("reset");
    }
    return true;
  }

  /**
   * The socket's member list changed (or was sent again after a (re)subscription): show it,
   * and note who arrived or went by comparing users, not connections.
   */
  _presence() {
    const before = new Map(this.members.map((user) => [user.id, user]));
    const members = this.socket.presence.flatMap((entry) => {
      const user = memberOf(entry);
      return user ? [user] : [];
    });
    this.members = members;
    this._emit("members");
    if (!this._knowsMembers) {
      // Everyone already here is not news; our own arrival is.
      this._knowsMembers = true;
      this._notice("joined", null);
      return;
    }
    const now = new Set(members.map((user) => user.id));
    // Our own connection may be listed in that first state or arrive by a later diff
    // (whichever comes first, the join or the read of the list): either way it was noted.
    /** @param {User} user */
    const others = (user) => this.me === null || user.id !== this.me.id;
    for (const user of members) if (!before.has(user.id) && others(user)) this._notice("joined", user);
    for (const user of before.values()) if (!now.has(user.id) && others(user)) this._notice("left", user);
  }

  /**
   * @param {"joined" | "left"} change
   * @param {User | null} user null: us
   */
  _notice(change, user) {
    const you = user === null || (this.me !== null && user.id === this.me.id);
    const who = you ? "You" : /** @type {User} */ (user).name;
    /** @type {Entry} */
    const entry = { kind: "notice", text: `${who} ${change} #${this.name}`, change };
    // While the history loads, the notice waits too: it goes after what was said before it.
    if (this._waiting !== null) this._waiting.push(() => this._add(entry, true));
    else this._add(entry, true);
  }

  /** @param {CloseEvent} event */
  _closed(event) {
    if (!this._leaving) this.closures += 1;
    this._waiting = null;
    this._emit("state");
    this._emit("closed", { code: event.code, reason: event.reason, byUs: this._leaving });
  }
}

/**
 * The user of a presence entry, named by what its join handler shared (`{ name }`); null for
 * a connection without a user (the chat has none: every room needs a sign-in).
 * @param {PresenceEntry} entry
 * @returns {User | null}
 */
function memberOf(entry) {
  if (entry.user === null) return null;
  for (const client of entry.clients) {
    const info = /** @type {{ name?: unknown } | null} */ (client.info);
    if (info && typeof info.name === "string") return { id: entry.user, name: info.name };
  }
  return { id: entry.user, name: entry.user };
}
