// The chat page: sign in, watch several rooms (one multiplexed socket), chat, leave.
import * as api from "./api.js";
import { formatSeen, hueOf, insertEntry, removeEntry, renderLog, tagOf } from "./log.js";
import { Room } from "./room.js";

const $ = (id) => document.getElementById(id);
const ROOM_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const SAVED_ROOMS = "wsroute-chat:rooms";
const SAVED_ACTIVE = "wsroute-chat:active";
const SAVED_UNSENT = "wsroute-chat:unsent";
// Not connected for this long: ask the server (over HTTP) whether the sign-in is still valid,
// since a browser never learns why a WebSocket handshake was refused.
const STUCK_AFTER_MS = 4000;
// The close code of a socket an admin removed (POST /api/admin/users/{id}/kick). It is one of
// the client's stop codes: the socket does not come back, and the page says why.
const KICKED = 4403;

const state = {
  me: null,
  /** @type {Map<string, Room>} */
  rooms: new Map(),
  active: null,
  /** The day the log's labels were made for ("Today" turns into "Yesterday" at midnight). */
  today: new Date().toDateString(),
  outageSince: null,
  outageChecked: false,
  everConnected: false,
  unreachable: false,
  removed: false,
};

// ------------------------------------------------------------------------------- helpers

function roomFromUrl() {
  const match = /^\/rooms\/([^/]+)$/.exec(location.pathname);
  if (!match) return null;
  const name = decodeURIComponent(match[1]);
  return ROOM_PATTERN.test(name) ? name : null;
}

/** The rooms saved last time; null on a first visit (none saved yet, as against none left). */
function savedRooms() {
  try {
    const saved = localStorage.getItem(SAVED_ROOMS);
    if (saved === null) return null;
    const rooms = JSON.parse(saved);
    return Array.isArray(rooms) ? rooms.filter((name) => ROOM_PATTERN.test(name)) : [];
  } catch {
    return [];
  }
}

function saveRooms() {
  localStorage.setItem(SAVED_ROOMS, JSON.stringify([...state.rooms.keys()]));
}

function activeRoom() {
  return state.active ? (state.rooms.get(state.active) ?? null) : null;
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// --------------------------------------------------------------------------------- views

function showSignIn(problem = "") {
  state.me = null;
  $("chat-view").hidden = true;
  $("account").hidden = true;
  $("sign-in-view").hidden = false;
  setText($("sign-in-problem"), problem);
  setText($("connection"), problem ? "Signed out" : "Not signed in");
  $("connection").dataset.kind = "idle";
  setText($("worker"), "");
  document.title = "Sign in · wsroute chat";
  setDrawer(false);
  $("rooms-toggle").hidden = true;
  autofocus($("name"));
}

function startChat() {
  $("sign-in-view").hidden = true;
  $("chat-view").hidden = false;
  $("account").hidden = false;
  $("rooms-toggle").hidden = false;
  setText($("me"), state.me.name);
  setText($("sign-in-problem"), "");
  setRemoved(false);
  state.everConnected = false;
  state.outageSince = null;
  state.outageChecked = false;
  const fromUrl = roomFromUrl();
  // A first visit starts in the room of its address, else the lobby; a room left stays left.
  const wanted = savedRooms() ?? (fromUrl ? [] : ["lobby"]);
  if (fromUrl && !wanted.includes(fromUrl)) wanted.push(fromUrl);
  for (const name of wanted) openRoom(name);
  resendUnsent();
  const remembered = localStorage.getItem(SAVED_ACTIVE);
  const first = fromUrl ?? (remembered && state.rooms.has(remembered) ? remembered : wanted[0]);
  switchTo(first, { history: "replace" });
  updateConnection();
}

/**
 * Close every room and go back to the sign-in form, saying why. The rooms stay saved and the
 * name stays in the box: signing in again (after an expiry or a new server key) brings them back.
 */
function signedOut(problem, { keepUnsent = true } = {}) {
  if (state.me) $("name").value = state.me.name;
  localStorage.removeItem(SAVED_UNSENT);
  if (keepUnsent && state.me) {
    // What was typed and never confirmed (typed offline, say) is sent once the same name
    // signs in again, as the rooms reopen: closing the rooms would throw it away.
    /** @type {Record<string, string[]>} */
    const rooms = {};
    for (const [name, room] of state.rooms) {
      const texts = [...room.pending.values()].map((entry) => entry.text);
      if (texts.length) rooms[name] = texts;
    }
    if (Object.keys(rooms).length) {
      localStorage.setItem(SAVED_UNSENT, JSON.stringify({ name: state.me.name, rooms }));
    }
  }
  closeRooms();
  showSignIn(problem);
}

/** Queue in each reopened room what it had not sent when the sign-in ended (same name only:
 * a different person signing in on this browser does not post someone else's words). */
function resendUnsent() {
  const saved = localStorage.getItem(SAVED_UNSENT);
  if (saved === null || !state.me) return;
  localStorage.removeItem(SAVED_UNSENT);
  try {
    const { name, rooms } = JSON.parse(saved);
    if (name !== state.me.name) return;
    for (const [room, texts] of Object.entries(rooms)) {
      const open = state.rooms.get(room);
      if (open && Array.isArray(texts)) for (const text of texts) if (typeof text === "string") open.say(text);
    }
  } catch {
    // A damaged entry: nothing to send.
  }
}

function closeRooms() {
  setRemoved(false);
  for (const room of state.rooms.values()) room.leave();
  state.rooms.clear();
  state.active = null;
  $("room-list").replaceChildren();
}

/** Enter the saved rooms again as `user` (the sign-in the browser holds now). */
function restartChat(user) {
  closeRooms();
  state.me = user;
  startChat();
}

// --------------------------------------------------------------------------------- rooms

function openRoom(name) {
  const existing = state.rooms.get(name);
  if (existing) return existing;
  const room = new Room(name);
  room.me = state.me;
  room.setHidden(document.hidden); // told to the room once it is subscribed
  room.addEventListener("entry", (event) => {
    if (room === activeRoom()) {
      room.unread = 0;
      insertEntry($("log"), room, event.detail, state.me);
    }
    updateRoomItem(room);
    updateTitle();
  });
  room.addEventListener("remove", (event) => {
    if (room === activeRoom()) removeEntry(room, event.detail);
  });
  room.addEventListener("reset", () => {
    if (room === activeRoom()) renderLog($("log"), room, state.me);
  });
  room.addEventListener("members", () => {
    if (room === activeRoom()) renderMembers();
  });
  room.addEventListener("state", () => {
    updateRoomItem(room);
    updateConnection();
  });
  room.addEventListener("identity", (event) => {
    // Another tab signed in as someone else, and this socket reconnected with that sign-in:
    // carry on as them, visibly (header, own messages, members), rather than post under a
    // name the header does not show.
    if (state.rooms.get(room.name) === room && state.me?.id !== event.detail.id) restartChat(event.detail);
  });
  room.addEventListener("problem", (event) => onProblem(room, event.detail));
  room.addEventListener("closed", (event) => onClosed(room, event.detail));
  state.rooms.set(name, room);
  $("room-list").append(roomItem(room));
  saveRooms();
  return room;
}

function roomItem(room) {
  const item = document.createElement("li");
  item.className = "room-item";
  item.dataset.room = room.name;
  const open = document.createElement("button");
  open.type = "button";
  open.className = "room-switch";
  const label = document.createElement("span");
  label.className = "room-name";
  label.textContent = `#${room.name}`;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  // The space keeps the button's text ("#lobby 3") within its label ("#lobby, 3 unread").
  open.append(label, " ", badge);
  open.addEventListener("click", () => {
    setDrawer(false); // before the switch, which focuses what the open drawer makes inert
    switchTo(room.name, { focus: true });
  });
  const leave = document.createElement("button");
  leave.type = "button";
  leave.className = "room-leave";
  leave.textContent = "×";
  leave.setAttribute("aria-label", `Leave #${room.name}`);
  leave.title = `Leave #${room.name}`;
  leave.addEventListener("click", () => leaveRoom(room.name));
  item.append(open, leave);
  room.item = item;
  updateRoomItem(room);
  return item;
}

function updateRoomItem(room) {
  const item = room.item;
  if (!item) return;
  const open = item.querySelector(".room-switch");
  const badge = item.querySelector(".badge");
  const active = room === activeRoom();
  if (active) open.setAttribute("aria-current", "page");
  else open.removeAttribute("aria-current");
  item.dataset.state = room.state;
  const unread = active ? 0 : room.unread;
  badge.hidden = unread === 0;
  setText(badge, unread ? String(unread) : "");
  open.setAttribute("aria-label", unread ? `#${room.name}, ${unread} unread` : `#${room.name}`);
}

function switchTo(name, { history: how = "push", focus = false } = {}) {
  const room = state.rooms.get(name) ?? null;
  state.active = room ? name : null;
  if (room) {
    room.unread = 0;
    localStorage.setItem(SAVED_ACTIVE, name);
  }
  const url = room ? `/rooms/${encodeURIComponent(name)}` : "/";
  if (location.pathname !== url) {
    if (how === "push") history.pushState({ room: state.active }, "", url);
    else if (how === "replace") history.replaceState({ room: state.active }, "", url);
  }
  setText($("room-title"), room ? `#${name}` : "No room");
  setText($("composer-label"), room ? `Message #${name}` : "Message");
  $("composer").hidden = !room;
  setText($("composer-problem"), "");
  updateCounter();
  renderLog($("log"), room, state.me);
  renderMembers();
  for (const each of state.rooms.values()) updateRoomItem(each);
  updateTitle();
  updateConnection();
  if (focus) focusAfterSwitch(room);
}

function leaveRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  const names = [...state.rooms.keys()];
  const index = names.indexOf(name);
  room.leave();
  state.rooms.delete(name);
  room.item?.remove();
  saveRooms();
  if (state.active === name) {
    const next = names[index + 1] ?? names[index - 1] ?? null;
    switchTo(next, { focus: true });
  } else {
    updateTitle();
    updateConnection();
    // Its × had the focus, and is gone: back to the room list, not to the page's start.
    if (!document.activeElement || document.activeElement === document.body) focusInDrawer();
  }
}

function onProblem(room, problem) {
  if (room !== activeRoom()) return; // it was about a message sent from that room; it is gone
  setText($("composer-problem"), problem.detail);
  const input = $("composer-text");
  if (!input.value && problem.text !== undefined) {
    // Give the refused text back, so that it can be fixed instead of retyped.
    input.value = problem.text;
    updateCounter();
  }
  autofocus(input);
}

async function onClosed(room, { code, reason, byUs }) {
  if (byUs || state.rooms.get(room.name) !== room) return;
  if (code === 4401) {
    // Our sign-in ended (it expired): the session check signs us out, saying why. If the
    // browser holds a newer sign-in (from another tab), carry on with that one instead.
    const session = await checkSession();
    if (session && state.rooms.get(room.name) === room) restartChat(session.user);
    return;
  }
  if (code === KICKED) {
    // The server closed the whole socket: every room gets this close, and none comes back.
    setRemoved(true);
    return;
  }
  if (code >= 4400 && code < 4500) {
    // The server refused this room (a bad name): forget it.
    state.rooms.delete(room.name);
    room.item?.remove();
    saveRooms();
    setText($("new-room-problem"), `Could not enter #${room.name}: ${reason || `error ${code - 4000}`}.`);
    if (state.active === room.name) switchTo(state.rooms.keys().next().value ?? null);
    return;
  }
  // The server closed this room only (an error on its side): enter it again, backing off.
  const delay = Math.min(30_000, 1000 * 2 ** Math.min(room.closures, 5));
  room.note(`Disconnected from #${room.name} (${reason || code}); entering it again…`);
  setTimeout(() => room.reopen(), delay);
}

// ------------------------------------------------------------------------------ rendering

/** The online members of the room on screen, then, under "Offline", those seen there before. */
function renderMembers() {
  const room = activeRoom();
  const members = room ? room.members : [];
  // Never ourselves: the server may list our last visit before our presence arrives.
  const offline = room ? room.offline.filter(({ user }) => !(state.me && user.id === state.me.id)) : [];
  setText($("members-heading"), `Members (${members.length})`);
  $("member-list").replaceChildren(
    ...members.map((member) => {
      const item = memberItem(member);
      if (room && room.away.has(member.id)) {
        const away = document.createElement("span");
        away.className = "away";
        away.textContent = " away";
        item.append(away);
      }
      if (state.me && member.id === state.me.id) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = " (you)";
        item.append(you);
      }
      return item;
    }),
  );
  setText($("offline-heading"), `Offline (${offline.length})`);
  $("offline-heading").hidden = $("offline-list").hidden = offline.length === 0;
  $("offline-list").replaceChildren(
    ...offline.map(({ user, lastSeen }) => {
      const item = memberItem(user);
      const seen = document.createElement("span");
      seen.className = "seen";
      seen.textContent = ` ${formatSeen(lastSeen)}`;
      item.append(seen);
      return item;
    }),
  );
}

/** A member's line: their name in their colour, and their tag. */
function memberItem(user) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.className = "member-name";
  name.dir = "auto";
  name.textContent = user.name;
  name.style.setProperty("--user-hue", hueOf(user));
  const tag = document.createElement("span");
  tag.className = "tag";
  tag.textContent = tagOf(user);
  item.append(name, " ", tag);
  return item;
}

/** What waits in the rooms not shown: counted in the tab's title and on the drawer's toggle. */
function updateTitle() {
  const unread = [...state.rooms.values()].reduce((sum, room) => sum + (room === activeRoom() ? 0 : room.unread), 0);
  const where = state.active ? `#${state.active} · ` : "";
  document.title = `${unread ? `(${unread}) ` : ""}${where}wsroute chat`;
  updateRoomsToggle(unread);
}

/** Characters as the server counts them (code points: an emoji is one, not two). */
function characters(text) {
  return [...text].length;
}

/**
 * Keep the message box within the room's limit, in characters, the unit the counter shows and
 * the server checks (typing stops at the limit; a longer paste is cut, and the page says so).
 */
function capComposer() {
  const room = activeRoom();
  const max = room ? room.maxLength : 500;
  const input = $("composer-text");
  const trimmed = input.value.trim();
  if (characters(trimmed) > max) {
    const leading = input.value.slice(0, input.value.length - input.value.trimStart().length);
    input.value = leading + [...trimmed].slice(0, max).join("");
    setText($("composer-problem"), `Messages are limited to ${max} characters: the rest was cut.`);
  }
  updateCounter();
}

function updateCounter() {
  const room = activeRoom();
  const max = room ? room.maxLength : 500;
  const length = characters($("composer-text").value.trim());
  const counter = $("composer-counter");
  setText(counter, `${length} / ${max} characters`);
  counter.classList.toggle("full", length >= max);
}

// ----------------------------------------------------------------------------- connection

/** Show the shared socket's state; when it stays down, find out why over HTTP. */
function updateConnection() {
  if (!state.me) return;
  const status = $("connection");
  const rooms = [...state.rooms.values()];
  let text;
  let kind;
  if (state.removed) {
    text = "Removed by an admin";
    kind = "stopped";
    state.outageSince = null;
  } else if (!rooms.length) {
    text = "Not in any room";
    kind = "idle";
    state.outageSince = null;
  } else if (rooms.some((room) => room.connection === "open")) {
    text = "Connected";
    kind = "ok";
    state.everConnected = true;
    state.outageSince = null;
    state.outageChecked = false;
    state.unreachable = false;
  } else {
    state.outageSince ??= Date.now();
    kind = "warn";
    if (state.unreachable) text = "Server unreachable, retrying…";
    else text = state.everConnected ? "Connection lost, reconnecting…" : "Connecting…";
    if (!state.outageChecked && Date.now() - state.outageSince > STUCK_AFTER_MS) {
      state.outageChecked = true;
      checkSession();
    }
  }
  setText(status, text);
  status.dataset.kind = kind;
  const room = activeRoom();
  setText($("worker"), room?.worker && kind === "ok" ? `Served by worker ${room.worker}` : "");
}

/**
 * An admin removed us (every room closed with `KICKED`): say so, and stop taking messages and
 * rooms until the page is reloaded (the client does not reconnect after that code).
 * @param {boolean} removed
 */
function setRemoved(removed) {
  const changed = state.removed !== removed;
  state.removed = removed;
  setText($("removed"), removed ? "An admin removed you from the chat. Reload the page to come back." : "");
  for (const id of ["composer-text", "send", "new-room"]) $(id).disabled = removed;
  $("join-room").querySelector("button").disabled = removed;
  if (changed && removed) {
    for (const room of state.rooms.values()) updateRoomItem(room);
    updateConnection();
  }
}

/** Ask the server whether the sign-in is still good; sign out with its reason if not. */
/**
 * Ask the server whether the sign-in is still good; sign out with its reason if not.
 * Resolves with the session (`{ user, expires_at }`) when it is good, else null.
 */
async function checkSession() {
  const result = await api.getSession();
  if (!state.me) return null;
  if (result.ok) {
    state.unreachable = false;
    return result.data;
  }
  if (result.status === 0) {
    state.unreachable = true;
    state.outageChecked = false; // ask again on the next tick past the threshold
    state.outageSince = Date.now();
    updateConnection();
    return;
  }
  if (result.status === 401) signedOut(api.describeError(result, "Your sign-in is no longer valid."));
  return null;
}

// ------------------------------------------------------------------------ drawer and focus

// Narrow windows (the same width as chat.css's) show the room list and "Join a room" in a
// drawer, opened from the header. Touch screens get no focus they did not ask for: a focused
// text box pops up the on-screen keyboard over half of the page.
const NARROW = matchMedia("(max-width: 720px)");
const COARSE = matchMedia("(pointer: coarse)");

/** Focus `element`, unless this is a touch screen. */
function autofocus(element) {
  if (!COARSE.matches) element.focus();
}

function drawerOpen() {
  return $("chat-view").classList.contains("drawer-open");
}

/** What the open drawer covers: made inert, so that it acts as a modal dialog. The header's
 * toggle (which closes it) and status (still announced) stay. */
function behindDrawer() {
  return [
    document.querySelector(".skip-link"),
    $("account"),
    document.querySelector("#chat-view > .room"),
    document.querySelector("#chat-view > .members"),
    document.querySelector("body > .bottom"),
  ];
}

/**
 * Open or close the drawer. Opening moves focus into it; `returnFocus` puts it back on the
 * toggle after closing (Escape, the toggle, the backdrop).
 */
function setDrawer(open, { returnFocus = false } = {}) {
  if (open === drawerOpen()) return;
  $("chat-view").classList.toggle("drawer-open", open);
  $("rooms-toggle").setAttribute("aria-expanded", String(open));
  for (const element of behindDrawer()) element.inert = open;
  if (open) focusInDrawer();
  else if (returnFocus) $("rooms-toggle").focus();
}

/** The room shown (else the first) in the room list; with no rooms, the box to join one. */
function focusInDrawer() {
  const list = $("room-list");
  const room = list.querySelector('.room-switch[aria-current="page"]') ?? list.querySelector(".room-switch");
  if (room) room.focus();
  else if (COARSE.matches) $("rooms-drawer").focus();
  else $("new-room").focus();
}

/** After a switch the user asked for (a click, joining, leaving): where they will type next. */
function focusAfterSwitch(room) {
  if (drawerOpen()) {
    focusInDrawer(); // left a room from the drawer: stay there
    return;
  }
  if (room) autofocus($("composer-text"));
  else if (!NARROW.matches) autofocus($("new-room"));
  // Never lose focus (the button pressed may be gone, or hidden in the closed drawer).
  const lost = !document.activeElement || document.activeElement === document.body;
  if (lost) (NARROW.matches ? $("rooms-toggle") : $("rooms-drawer")).focus();
}

/** The toggle says how many messages wait in the other rooms: "Rooms (3)". */
function updateRoomsToggle(unread) {
  const count = $("rooms-unread");
  if (count.dataset.unread === String(unread)) return;
  count.dataset.unread = String(unread);
  // Seen: "Rooms (3)"; heard: "Rooms (3 unread)". The hidden part ends with the ")" (a
  // visually hidden element counts as a block, and one after it would be read apart).
  const heard = document.createElement("span");
  heard.className = "visually-hidden";
  heard.textContent = " unread)";
  const seen = document.createElement("span");
  seen.setAttribute("aria-hidden", "true");
  seen.textContent = ")";
  count.replaceChildren(...(unread ? [` (${unread}`, heard, seen] : []));
}

// --------------------------------------------------------------------------------- wiring

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  if (!name) {
    setText($("sign-in-problem"), "Enter a display name.");
    $("name").focus();
    return;
  }
  const button = event.submitter ?? $("sign-in").querySelector("button");
  button.disabled = true;
  const result = await api.signIn(name);
  button.disabled = false;
  if (!result.ok) {
    setText($("sign-in-problem"), api.describeError(result, "Could not sign in."));
    $("name").focus();
    return;
  }
  state.me = result.data.user;
  startChat();
  autofocus($("composer-text"));
});

$("sign-out").addEventListener("click", async () => {
  signedOut("", { keepUnsent: false }); // signing out on purpose: nothing is sent later
  await api.signOut();
});

$("join-room").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("new-room");
  const name = input.value.trim().toLowerCase().replace(/^#/, "");
  if (!ROOM_PATTERN.test(name)) {
    setText($("new-room-problem"), "Room names are 1 to 32 lowercase letters, digits, “-” or “_”.");
    input.focus();
    return;
  }
  setText($("new-room-problem"), "");
  input.value = "";
  setDrawer(false); // before the switch, which focuses what the drawer made inert
  openRoom(name);
  switchTo(name, { focus: true });
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = activeRoom();
  if (!room) return;
  const input = $("composer-text");
  // No checks here: the server validates (and says what is wrong), whatever the client.
  room.say(input.value);
  input.value = "";
  setText($("composer-problem"), "");
  updateCounter();
  input.focus();
});

$("composer-text").addEventListener("input", capComposer);

$("rooms-toggle").addEventListener("click", () => setDrawer(!drawerOpen(), { returnFocus: true }));

// Away while this page is hidden (another tab, a minimised window): every room shows it.
document.addEventListener("visibilitychange", () => {
  for (const room of state.rooms.values()) room.setHidden(document.hidden);
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || !drawerOpen()) return;
  event.preventDefault();
  setDrawer(false, { returnFocus: true });
});

// The backdrop (the chat view's ::before, under the drawer) closes it.
$("chat-view").addEventListener("click", (event) => {
  if (event.target === $("chat-view") && drawerOpen()) setDrawer(false, { returnFocus: true });
});

$("leave-current").addEventListener("click", () => {
  if (state.active) leaveRoom(state.active);
});

// A window widened past the narrow layout shows the rooms as a column again: no drawer.
NARROW.addEventListener("change", () => {
  if (!NARROW.matches) setDrawer(false);
});

window.addEventListener("popstate", () => {
  // Back and Forward move between the rooms we are in; they never join one we left (or were
  // removed from): that takes the Join form.
  const name = roomFromUrl();
  if (!state.me) return;
  if (name && state.rooms.has(name)) switchTo(name, { history: "none" });
  else switchTo(state.active, { history: "replace" }); // the address shows where we are
});

// Status changes arrive as events ("state"); this tick only ages what depends on time
// (an outage that lasts too long sends us to check the session).
function tick() {
  if (!state.me) return;
  const today = new Date().toDateString();
  if (today !== state.today) {
    state.today = today; // past midnight: "Today" is now "Yesterday", and times need a date
    renderLog($("log"), activeRoom(), state.me);
    renderMembers();
  }
  for (const room of state.rooms.values()) updateRoomItem(room);
  updateConnection();
}

async function boot() {
  setInterval(tick, 1000);
  fetch("/api/health")
    .then((response) => response.json())
    .then((health) => {
      $("asyncapi-link").hidden = !health.asyncapi;
    })
    .catch(() => {});
  const session = await api.getSession();
  if (session.ok) {
    state.me = session.data.user;
    startChat();
    return;
  }
  const reason = session.data?.detail?.reason;
  // A first visit is not a problem; a forged or expired token is worth saying.
  showSignIn(session.status === 401 && reason === "missing" ? "" : api.describeError(session, "Sign in to chat."));
}

boot();
