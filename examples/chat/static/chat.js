// The chat page: sign in, watch several rooms (one multiplexed socket), chat, leave.
import * as api from "./api.js";
import { Room } from "./room.js";

const $ = (id) => document.getElementById(id);
const ROOM_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const SAVED_ROOMS = "wsroute-chat:rooms";
const SAVED_ACTIVE = "wsroute-chat:active";
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
  lastSent: new Map(),
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

function savedRooms() {
  try {
    const rooms = JSON.parse(localStorage.getItem(SAVED_ROOMS) ?? "[]");
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

function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
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
  $("name").focus();
}

function startChat() {
  $("sign-in-view").hidden = true;
  $("chat-view").hidden = false;
  $("account").hidden = false;
  setText($("me"), state.me.name);
  setText($("sign-in-problem"), "");
  setRemoved(false);
  state.everConnected = false;
  state.outageSince = null;
  state.outageChecked = false;
  const wanted = savedRooms();
  const fromUrl = roomFromUrl();
  if (fromUrl && !wanted.includes(fromUrl)) wanted.push(fromUrl);
  if (!wanted.length) wanted.push("lobby");
  for (const name of wanted) openRoom(name);
  const remembered = localStorage.getItem(SAVED_ACTIVE);
  const first = fromUrl ?? (remembered && state.rooms.has(remembered) ? remembered : wanted[0]);
  switchTo(first, { history: "replace" });
  updateConnection();
}

/** Close every room and go back to the sign-in form, saying why. */
function signedOut(problem) {
  setRemoved(false);
  for (const room of state.rooms.values()) room.leave();
  state.rooms.clear();
  state.active = null;
  $("room-list").replaceChildren();
  showSignIn(problem);
}

// --------------------------------------------------------------------------------- rooms

function openRoom(name) {
  const existing = state.rooms.get(name);
  if (existing) return existing;
  const room = new Room(name);
  room.addEventListener("entry", (event) => {
    if (room === activeRoom()) {
      room.unread = 0;
      appendEntry(event.detail);
    }
    updateRoomItem(room);
    updateTitle();
  });
  room.addEventListener("reset", () => {
    if (room === activeRoom()) renderLog();
  });
  room.addEventListener("members", () => {
    if (room === activeRoom()) renderMembers();
  });
  room.addEventListener("state", () => {
    updateRoomItem(room);
    updateConnection();
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
  open.append(label, badge);
  open.addEventListener("click", () => switchTo(room.name, { focus: true }));
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
  renderLog();
  renderMembers();
  for (const each of state.rooms.values()) updateRoomItem(each);
  updateTitle();
  updateConnection();
  if (focus) (room ? $("composer-text") : $("new-room")).focus();
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
    updateConnection();
  }
}

function onProblem(room, event) {
  if (room !== activeRoom()) return; // it was about a message sent from that room; it is gone
  setText($("composer-problem"), event.detail);
  const input = $("composer-text");
  const sent = state.lastSent.get(room.name);
  if (!input.value && sent !== undefined) {
    // Give the refused text back, so that it can be fixed instead of retyped.
    input.value = sent;
    updateCounter();
  }
  input.focus();
}

async function onClosed(room, { code, reason, byUs }) {
  if (byUs || state.rooms.get(room.name) !== room) return;
  if (code === 4401) {
    await checkSession();
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

function entryElement(entry) {
  const item = document.createElement("li");
  item.className = `entry entry-${entry.kind}`;
  if (entry.kind === "notice") {
    item.textContent = entry.text;
    return item;
  }
  const meta = document.createElement("p");
  meta.className = "entry-meta";
  const who = document.createElement("strong");
  if (entry.kind === "announcement") {
    who.textContent = "Announcement";
  } else {
    who.textContent = entry.user.name;
    if (state.me && entry.user.id === state.me.id) item.classList.add("mine");
  }
  const time = document.createElement("time");
  time.dateTime = entry.at;
  time.textContent = formatTime(entry.at);
  meta.append(who, " ", time);
  const text = document.createElement("p");
  text.className = "entry-text";
  text.textContent = entry.text;
  item.append(meta, text);
  return item;
}

function scrollToEnd(force) {
  const log = $("log");
  const nearEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  if (force || nearEnd) log.scrollTop = log.scrollHeight;
}

function appendEntry(entry) {
  const log = $("log");
  log.querySelector(".entry-empty")?.remove();
  log.append(entryElement(entry));
  scrollToEnd(entry.user && state.me && entry.user.id === state.me.id);
}

function renderLog() {
  const log = $("log");
  const room = activeRoom();
  // Rebuilding the log is not news: keep screen readers from reading it all out.
  log.setAttribute("aria-busy", "true");
  const items = room ? room.entries.map(entryElement) : [];
  if (!items.length) {
    const empty = document.createElement("li");
    empty.className = "entry entry-empty";
    empty.textContent = room ? "No messages yet. Say hello!" : "You are not in any room: join one.";
    items.push(empty);
  }
  log.replaceChildren(...items);
  scrollToEnd(true);
  log.setAttribute("aria-busy", "false");
}

function renderMembers() {
  const room = activeRoom();
  const members = room ? room.members : [];
  setText($("members-heading"), `Members (${members.length})`);
  $("member-list").replaceChildren(
    ...members.map((member) => {
      const item = document.createElement("li");
      item.textContent = member.name;
      if (state.me && member.id === state.me.id) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = " (you)";
        item.append(you);
      }
      return item;
    }),
  );
}

function updateTitle() {
  const unread = [...state.rooms.values()].reduce((sum, room) => sum + (room === activeRoom() ? 0 : room.unread), 0);
  const where = state.active ? `#${state.active} · ` : "";
  document.title = `${unread ? `(${unread}) ` : ""}${where}wsroute chat`;
}

function updateCounter() {
  const room = activeRoom();
  const max = room ? room.maxLength : 500;
  const length = $("composer-text").value.trim().length;
  const counter = $("composer-counter");
  setText(counter, `${length} / ${max} characters`);
  counter.classList.toggle("over", length > max);
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
async function checkSession() {
  const result = await api.getSession();
  if (!state.me) return;
  if (result.ok) {
    state.unreachable = false;
    return;
  }
  if (result.status === 0) {
    state.unreachable = true;
    state.outageChecked = false; // ask again on the next tick past the threshold
    state.outageSince = Date.now();
    updateConnection();
    return;
  }
  if (result.status === 401) signedOut(api.describeError(result, "Your sign-in is no longer valid."));
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
  $("composer-text").focus();
});

$("sign-out").addEventListener("click", async () => {
  signedOut("");
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
  state.lastSent.set(room.name, input.value);
  input.value = "";
  setText($("composer-problem"), "");
  updateCounter();
  input.focus();
});

$("composer-text").addEventListener("input", updateCounter);

window.addEventListener("popstate", () => {
  const name = roomFromUrl();
  if (!name || !state.me) return;
  openRoom(name);
  switchTo(name, { history: "none" });
});

// Status changes arrive as events ("state"); this tick only ages what depends on time
// (an outage that lasts too long sends us to check the session).
function tick() {
  if (!state.me) return;
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
