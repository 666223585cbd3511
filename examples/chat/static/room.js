// One room the page watches: a topic of the shared multiplexed socket, its log and members.
//
// Every Room is a `MultiplexWebSocket` to /rooms/{name}: all rooms of the page ride on ONE
// physical WebSocket, which the client reconnects (and resubscribes) by itself after a network
// drop or a server restart. Each time the topic opens, the room loads its history over HTTP;
// events that arrive meanwhile wait, so nothing is lost and nothing is shown twice (messages
// carry ids).
//
// Events (EventTarget): "entry" (detail: the new log entry), "reset" (the log was rebuilt),
// "members", "state", "problem" (detail: an error event from the server), "closed"
// (detail: { code, reason }).
import { MultiplexWebSocket } from "/wsroute/multiplex.js";
import { getHistory } from "./api.js";

const MAX_ENTRIES = 500;

export class Room extends EventTarget {
  /** @param {string} name */
  constructor(name) {
    super();
    this.name = name;
    /** Log entries, oldest first: {kind: "message"|"announcement"|"notice", id?, user?, text, at?} */
    this.entries = [];
    this.ids = new Set();
    /** @type {{id: string, name: string}[]} */
    this.members = [];
    this.version = 0;
    this.unread = 0;
    this.me = null;
    this.worker = null;
    this.maxLength = 500;
    /** Times in a row the server closed this room; reset when it opens. */
    this.closures = 0;
    this._waiting = null; // events that arrived while the history loads
    this._maxId = 0;
    this._notices = 0;
    this._leaving = false;
    this._connect();
  }

  _connect() {
    const socket = new MultiplexWebSocket(`/rooms/${encodeURIComponent(this.name)}`);
    socket.addEventListener("open", () => this._opened());
    socket.addEventListener("message", (event) => this._received(event.data));
    socket.addEventListener("close", (event) => this._closed(event));
    // The shared physical socket connecting, open, or backing off: the room's status too.
    socket.socket.addEventListener("statechange", () => this._emit("state"));
    this.socket = socket;
  }

  /** Enter the room again after the server closed it (the log is kept). */
  reopen() {
    if (this.state !== "closed" || this._leaving) return;
    this._connect();
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

  /** Send a chat message (buffered by the client while the topic reconnects). */
  say(text) {
    this.socket.send(JSON.stringify({ text }));
  }

  /** Add a line of our own to the log (not from the server). */
  note(text) {
    this._add({ kind: "notice", text }, true);
  }

  /** Leave the room: the server runs its leave handler and tells the others. */
  leave() {
    this._leaving = true;
    if (this.socket.readyState <= MultiplexWebSocket.OPEN) this.socket.close(1000, "left the room");
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async _opened() {
    this.closures = 0;
    // A fresh subscription: presence versions start over (the database may be new).
    this.version = 0;
    this._emit("state");
    const waiting = (this._waiting = []);
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

  _received(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (this._waiting !== null && event.type !== "hello" && event.type !== "error") this._waiting.push(event);
    else this._handle(event);
  }

  _handle(event) {
    switch (event.type) {
      case "hello":
        this.me = event.you;
        this.worker = event.worker;
        this.maxLength = event.max_length;
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

  _fromServer(item) {
    return { kind: item.type, id: item.id, user: item.user ?? null, text: item.text, at: item.at };
  }

  /**
   * Add an entry in order; messages are de-duplicated by id. Returns true when added.
   * Messages sort by id; a notice sorts right after the newest message seen when it arrived.
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
    while (at > 0 && this.entries[at - 1].order > entry.order) at -= 1;
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

  _closed(event) {
    if (!this._leaving) this.closures += 1;
    this._waiting = null;
    this._emit("state");
    this._emit("closed", { code: event.code, reason: event.reason, byUs: this._leaving });
  }
}
