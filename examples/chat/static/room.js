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
// one goes. After a reconnect it notes "Reconnected" once and takes the new member list as it
// is, without a line for everyone it lists again. Members not connected come from the server's
// record of who was seen in the room (`GET /api/rooms/{room}/members`, read on each
// subscription); someone who leaves while we watch moves there, last seen now.
//
// What we say is shown at once as *pending* (it carries a random `ref`), until the server's
// broadcast echoes that ref back: the pending line then becomes the message, in its place in
// the order of ids. A pending message whose connection dropped is sent again once the room is
// back; the server keeps one message per ref, so nothing is posted twice.
//
// Events (EventTarget): "entry" (detail: the entry now in `entries`), "remove" (detail: an entry
// taken out: a confirmed or refused pending one, or the oldest past MAX_ENTRIES), "reset" (the
// log was rebuilt), "members" (`members`, `away` or `offline` changed), "state", "problem" (detail:
// { detail, text }: the server's sentence, and the refused text when it was ours), "closed"
// (detail: { code, reason, byUs }).
import { MultiplexWebSocket } from "/wsroute/multiplex.js";
import { getHistory, getMembers } from "./api.js";
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
 * @property {string} [ref] our messages: the ref it was sent with
 * @property {boolean} [pending] sent, not yet confirmed by the server
 * @property {number} [connection] pending: the connection (count of opens) it last went out
 *   on; 0 while not sent
 */

/**
 * A member of the room who is not connected to it.
 * @typedef {object} Offline
 * @property {User} user
 * @property {string} lastSeen when they last entered or left the room (ISO 8601)
 */

const MAX_ENTRIES = 500;
/** Pending lines sort after every message the server has numbered. */
const PENDING_ORDER = 2 ** 52;

/** A random ref for a message (the server takes `[A-Za-z0-9_-]{1,64}`). */
function newRef() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

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
    /** @type {Offline[]} Members seen in the room before and not in it now, latest seen first. */
    this.offline = [];
    /** @type {Set<string>} Ids of the members here whose every page is hidden (away). */
    this.away = new Set();
    /** Whether this page is hidden: told to the room on each subscription and change. */
    this._hidden = false;
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
    this._pendings = 0;
    this._leaving = false;
    /** How many times the topic has opened (a pending message remembers its one). */
    this._opens = 0;
    /** Subscriptions so far: the second and later ones are reconnects. */
    this._subscriptions = 0;
    /** The next member list is a resubscription's: take it without joined/left lines. */
    this._quietPresence = false;
    /** @type {Map<string, Entry>} our messages the server has not confirmed, by ref */
    this.pending = new Map();
    /** Removes our listener from the shared socket (set by `_connect`). */
    this._unlisten = () => {};
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
    // One listener per room, removed when it leaves: the socket outlives every room, and a
    // listener left on it would keep a left room (and its log) alive for the page's life.
    this._unlisten();
    const physical = socket.socket;
    const onState = () => this._emit("state");
    physical.addEventListener("statechange", onState);
    this._unlisten = () => {
      physical.removeEventListener("statechange", onState);
      this._unlisten = () => {};
    };
    return topic;
  }

  /** The topic's `MultiplexWebSocket`. */
  get socket() {
    return this.topic.socket;
  }

  /**
   * This page was hidden or shown again: the room shows us as away while hidden.
   * @param {boolean} hidden
   */
  setHidden(hidden) {
    if (hidden === this._hidden) return;
    this._hidden = hidden;
    if (this.socket.readyState === MultiplexWebSocket.OPEN) this.topic.send({ type: "status", away: hidden });
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
   * Send a chat message (buffered by the client while the topic reconnects), shown as pending
   * until the server has it.
   * @param {string} text
   */
  say(text) {
    // Half an emoji (a lone surrogate, from a cut paste) is not JSON the server can read: the
    // line would stay "sending…" for ever. It becomes U+FFFD, as TextEncoder would make it.
    text = text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
    const ref = newRef();
    const open = this.socket.readyState === MultiplexWebSocket.OPEN;
    if (!text.trim()) {
      if (open) this.topic.send({ text: "", ref }); // the server says why it is not sent
      return;
    }
    /** @type {Entry} */
    const entry = {
      kind: "message",
      user: this.me,
      text: text.trim(),
      at: new Date().toISOString(),
      ref,
      pending: true,
      connection: 0,
    };
    this.pending.set(ref, entry);
    this._add(entry, true);
    // Not open: the room sends it on (re)subscription, after the ones typed before it. (The
    // client's own buffer would send it before those, and a closed topic drops it.)
    if (open) this._send(entry);
  }

  /** @param {Entry} entry a pending message */
  _send(entry) {
    entry.connection = this._opens;
    this.topic.send({ text: entry.text, ref: /** @type {string} */ (entry.ref) });
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
    this._unlisten();
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
    this._opens += 1;
    this._emit("state");
  }

  /** @param {boolean} recovered the server replays what this room missed while away */
  async _subscribed(recovered) {
    this._flushWaiting();
    this._subscriptions += 1;
    if (this._subscriptions > 1) {
      this._quietPresence = true;
      this.note("Reconnected");
    }
    this._resendPending();
    this._loadOffline();
    // A new subscription shows us as present again (the join's info): say we are away.
    if (this._hidden) this.topic.send({ type: "status", away: true });
    if (recovered) return;
    /** @type {(() => void)[]} */
    const waiting = [];
    this._waiting = waiting;
    const result = await getHistory(this.name);
    // Resubscribed meanwhile: what arrived was shown then, but the history still counts
    // (messages carry ids: nothing shows twice).
    if (result.ok) {
      let added = false;
      for (const item of result.data.messages) added = this._add(this._fromServer(item), false) || added;
      if (added) this._emit("reset");
    }
    if (this._waiting === waiting) this._flushWaiting();
  }

  /** Ask the server who else has been in the room (its online members come as presence). */
  async _loadOffline() {
    const result = await getMembers(this.name);
    if (!result.ok) return; // the list stays as it was: presence still moves people in and out
    /** @type {{ user: User, online: boolean, last_seen: string | null }[]} */
    const listed = result.data.members;
    /** @type {Offline[]} */
    const fresh = listed.flatMap((member) =>
      member.online || member.last_seen === null ? [] : [{ user: member.user, lastSeen: member.last_seen }],
    );
    // Who left while the answer was on its way is listed online there: keep them offline.
    // Of two times for one user, the later wins: a leave is announced before it is written.
    const here = new Set(this.members.map((user) => user.id));
    /** @type {Map<string, Offline>} */
    const merged = new Map();
    for (const gone of [...fresh, ...this.offline]) {
      if (here.has(gone.user.id)) continue;
      const known = merged.get(gone.user.id);
      if (known === undefined || Date.parse(gone.lastSeen) > Date.parse(known.lastSeen)) {
        merged.set(gone.user.id, gone);
      }
    }
    this.offline = [...merged.values()].sort((a, b) => Date.parse(b.lastSeen) - Date.parse(a.lastSeen));
    this._emit("members");
  }

  /** Show what arrived while the history loaded, in order. */
  _flushWaiting() {
    const waiting = this._waiting;
    this._waiting = null;
    if (waiting) for (const run of waiting) run();
  }

  /** @param {RoomsMessage} event */
  _received(event) {
    if (this._waiting !== null && event.type !== "hello" && event.type !== "error") {
      this._waiting.push(() => this._handle(event));
    } else {
      this._handle(event);
    }
  }

  /**
   * Send, in the order typed, every pending message not sent on this connection: those typed
   * while away, and those sent on a connection that dropped before the server's echo came
   * back (they may never have arrived; if one did, the server answers with the kept message).
   */
  _resendPending() {
    for (const entry of this.pending.values()) if (entry.connection !== this._opens) this._send(entry);
  }

  /** @param {RoomsMessage} event */
  _handle(event) {
    switch (event.type) {
      case "hello": {
        // The socket signs in with the browser's cookie: after a reconnect it may be another
        // tab's newer sign-in. The page must follow, not keep showing the old name.
        const was = this.me;
        this.me = event.you;
        if (was && was.id !== event.you.id) this._emit("identity", event.you);
        this.worker = event.worker;
        this.maxLength = event.max_length ?? this.maxLength;
        for (const entry of this.pending.values()) entry.user ??= event.you;
        this._emit("state");
        return;
      }
      case "message":
      case "announcement": {
        const mine = event.type === "message" && event.ref ? this.pending.get(event.ref) : undefined;
        if (mine) this._settle(mine);
        this._add(this._fromServer(event), true);
        return;
      }
      case "error": {
        const mine = event.ref ? this.pending.get(event.ref) : undefined;
        if (mine) this._settle(mine);
        this._emit("problem", { detail: event.detail, text: mine?.text });
        return;
      }
      default:
        return; // a newer server: ignore what we do not know
    }
  }

  /**
   * Take a pending line out: the server confirmed it (its message takes its place) or refused it.
   * @param {Entry} entry
   */
  _settle(entry) {
    this.pending.delete(/** @type {string} */ (entry.ref));
    const at = this.entries.indexOf(entry);
    if (at < 0) return;
    this.entries.splice(at, 1);
    this._emit("remove", entry);
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
    } else if (entry.pending) {
      this._pendings += 1;
      entry.order = PENDING_ORDER + this._pendings;
    } else {
      this._notices += 1;
      entry.order = this._maxId + this._notices * 1e-6;
    }
    entry.at ??= new Date().toISOString();
    let at = this.entries.length;
    while (at > 0 && /** @type {number} */ (this.entries[at - 1].order) > entry.order) at -= 1;
    this.entries.splice(at, 0, entry);
    if (live && entry.kind !== "notice" && !entry.pending) this.unread += 1;
    // One line at a time (never a rebuilt log): a screen reader announces just the new line.
    if (live) this._emit("entry", entry);
    while (this.entries.length > MAX_ENTRIES) {
      const [old] = this.entries.splice(0, 1);
      if (old.id !== undefined) this.ids.delete(old.id);
      if (live) this._emit("remove", old);
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
    this.away = new Set(
      this.socket.presence.flatMap((entry) =>
        entry.user !== null && entry.clients.every((client) => isAway(client.info)) ? [entry.user] : [],
      ),
    );
    // Who arrived is no longer offline. Who left is offline from now on, last seen now; but
    // a reconnect's list also drops who left while we were gone, at times only the server
    // knows: ask it instead.
    const now = new Set(members.map((user) => user.id));
    const gone = this._quietPresence ? [] : [...before.values()].filter((user) => !now.has(user.id));
    const goneIds = new Set(gone.map((user) => user.id));
    const seen = new Date().toISOString();
    this.offline = [
      ...gone.map((user) => ({ user, lastSeen: seen })),
      ...this.offline.filter(({ user }) => !now.has(user.id) && !goneIds.has(user.id)),
    ];
    if (this._quietPresence) this._loadOffline();
    this._emit("members");
    if (this._quietPresence) {
      // A reconnect's list: "Reconnected" said it; a line per member listed again would not.
      this._quietPresence = false;
      return;
    }
    if (!this._knowsMembers) {
      // Everyone already here is not news; our own arrival is.
      this._knowsMembers = true;
      this._notice("joined", null);
      return;
    }
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
    this._flushWaiting();
    this._emit("state");
    this._emit("closed", { code: event.code, reason: event.reason, byUs: this._leaving });
  }
}

/**
 * Whether a member's presence info says its page is hidden (`SetStatus`).
 * @param {unknown} info
 */
function isAway(info) {
  return typeof info === "object" && info !== null && /** @type {{ away?: unknown }} */ (info).away === true;
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
