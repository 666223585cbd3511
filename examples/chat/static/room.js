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
// Events (EventTarget): "entry" (detail: the new log entry), "reset" (the log was rebuilt),
// "members", "state", "problem" (detail: an error event from the server), "closed"
// (detail: { code, reason }).
import { MultiplexWebSocket } from "/wsroute/multiplex.js";
import { getHistory } from "./api.js";
import { rooms } from "./chat-api.js";

/** @import { Announcement, ChatMessage, Presence, RoomsMessage, User } from "./chat-api.js" */

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
    /** @type {User[]} */
    this.members = [];
    this.version = 0;
    this.unread = 0;
    /** @type {User | null} */
    this.me = null;
    /** @type {number | null} */
    this.worker = null;
    this.maxLength = 500;
    /** Times in a row the server closed this room; reset when it opens. */
    this.closures = 0;
    /** @type {RoomsMessage[] | null} events that arrived while the history loads */
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
    // A fresh subscription: presence versions start over (the database may be new).
    this.version = 0;
    this._emit("state");
  }

  /** @param {boolean} recovered the server replays what this room missed while away */
  async _subscribed(recovered) {
    this._waiting = null;
    if (recovered) return;
    /** @type {RoomsMessage[]} */
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
    for (const event of waiting) this._handle(event);
  }

  /** @param {RoomsMessage} event */
  _received(event) {
    if (this._waiting !== null && event.type !== "hello" && event.type !== "error") this._waiting.push(event);
    else this._handle(event);
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
      case "presence":
        this._presence(event);
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

  /** @param {Presence} event */
  _presence(event) {
    if (event.version >= this.version) {
      this.version = event.version;
      this.members = event.members;
      this._emit("members");
    }
    if (event.change && event.user) {
      const you = this.me && event.user.id === this.me.id;
      const who = you ? "You" : event.user.name;
      const what = event.change === "joined" ? `joined #${this.name}` : `left #${this.name}`;
      this._add({ kind: "notice", text: `${who} ${what}`, change: event.change }, true);
    }
  }

  /** @param {CloseEvent} event */
  _closed(event) {
    if (!this._leaving) this.closures += 1;
    this._waiting = null;
    this._emit("state");
    this._emit("closed", { code: event.code, reason: event.reason, byUs: this._leaving });
  }
}
