// The log of the room on screen: one <li> per entry of `Room.entries` (room.js), in its order.
//
// New lines are inserted in place and never by rebuilding the list, so that a screen reader
// (the log's wrapper is a polite live region) announces just the new line. Each line knows the
// one before it: a separator where the day changes ("Today", "Yesterday", the date), and
// consecutive messages of one person, one day, a few minutes apart share one name line, which
// is then hidden from sight only (a screen reader still says who spoke). Names and messages
// go in as text, never markup, with `dir="auto"`: right-to-left text aligns right.

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// Consecutive messages of one person within this long share one name line.
const GROUP_WITHIN_MS = 5 * 60_000;

/** The local calendar day of a time, as "year-month-day" (null for an unreadable time). */
function dayOf(iso) {
  const date = new Date(iso ?? "");
  if (Number.isNaN(date.getTime())) return null;
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

function daysAgo(date) {
  const start = (day) => new Date(day.getFullYear(), day.getMonth(), day.getDate()).getTime();
  return Math.round((start(new Date()) - start(date)) / 86_400_000);
}

/** "14:05" today; "3 Dec, 14:05" earlier this year; "3 Dec 2025, 14:05" before. */
function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (daysAgo(date) === 0) return time;
  const sameYear = date.getFullYear() === new Date().getFullYear();
  const day = date.toLocaleDateString([], { day: "numeric", month: "short", year: sameYear ? undefined : "numeric" });
  return `${day}, ${time}`;
}

/** When an offline member was last in the room: "last seen 14:05", "last seen 3 Dec, 14:05". */
export function formatSeen(iso) {
  const when = formatTime(iso);
  return when ? `last seen ${when}` : "";
}

/** The label of a date separator: "Today", "Yesterday", or the full date. */
function formatDay(iso) {
  const date = new Date(iso);
  const ago = daysAgo(date);
  if (ago === 0) return "Today";
  if (ago === 1) return "Yesterday";
  return date.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}

/**
 * Tells apart two people with one display name: the last 4 characters of their random id.
 * @param {{ id: string }} user
 */
export function tagOf(user) {
  return `#${user.id.slice(-4)}`;
}

/** The hue of each user's name (chat.css sets the lightness), from their id: the same in every
 * room, for every viewer. */
export function hueOf(user) {
  let hash = 0;
  for (const char of user.id) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return String(hash % 360);
}

/** The `<li>` of each entry on screen (the active room's), and the entry of each `<li>`. */
const itemOf = new WeakMap();
const entryOf = new WeakMap();

/** True when `entry` continues `previous`: one person, one day, a few minutes apart. */
function continues(previous, entry) {
  if (!previous || previous.kind !== "message" || entry.kind !== "message") return false;
  if (!previous.user || !entry.user || previous.user.id !== entry.user.id) return false;
  const gap = new Date(entry.at).getTime() - new Date(previous.at).getTime();
  return dayOf(previous.at) === dayOf(entry.at) && Math.abs(gap) < GROUP_WITHIN_MS;
}

function entryElement(entry, me) {
  const item = document.createElement("li");
  item.className = `entry entry-${entry.kind}`;
  itemOf.set(entry, item);
  entryOf.set(item, entry);
  if (entry.kind === "notice") {
    const text = document.createElement("p");
    text.className = "entry-text";
    text.textContent = entry.text;
    item.append(text);
    return item;
  }
  const meta = document.createElement("p");
  meta.className = "entry-meta";
  const who = document.createElement("strong");
  if (entry.kind === "announcement") {
    who.textContent = "Announcement";
    meta.append(who);
  } else {
    const user = entry.user ?? { id: "", name: "You" };
    who.textContent = user.name;
    who.dir = "auto"; // a right-to-left name stays whole, and the rest of the line keeps its order
    who.style.setProperty("--user-hue", hueOf(user));
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = user.id ? tagOf(user) : "";
    meta.append(who, " ", tag);
    if (me && user.id === me.id) item.classList.add("mine");
  }
  const time = document.createElement("time");
  time.dateTime = entry.at;
  time.textContent = formatTime(entry.at);
  meta.append(" ", time);
  if (entry.pending) {
    item.classList.add("pending");
    const sending = document.createElement("span");
    sending.className = "sending";
    sending.textContent = " · sending…";
    meta.append(sending);
  }
  const text = document.createElement("p");
  text.className = "entry-text";
  text.dir = "auto"; // Arabic or Hebrew aligns right, whatever the page's direction
  text.textContent = entry.text;
  item.append(meta, text);
  return item;
}

/**
 * Give `item` what depends on the entry before it: a date separator when the day changes, and
 * the grouped look when it continues the same person's messages (the name line is then only
 * hidden from sight: a screen reader still says who spoke).
 */
function placeEntry(item, entry, previous) {
  const day = dayOf(entry.at);
  const newDay = day !== null && day !== dayOf(previous?.at);
  let separator = item.querySelector(":scope > .day");
  if (newDay) {
    if (!separator) {
      separator = document.createElement("p");
      separator.className = "day";
      item.prepend(separator);
    }
    setText(separator, formatDay(entry.at));
  } else {
    separator?.remove();
  }
  item.classList.toggle("continued", !newDay && continues(previous, entry));
}

/**
 * Put a new entry of `room` (the one on screen) in its place in `log`; the lines already there
 * stay as they are. Scrolls to it when it is ours or the reader was at the end.
 */
export function insertEntry(log, room, entry, me) {
  const index = room.entries.indexOf(entry);
  if (index < 0) return;
  log.querySelector(".entry-empty")?.remove();
  const nearEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  const item = entryElement(entry, me);
  placeEntry(item, entry, room.entries[index - 1]);
  const next = room.entries[index + 1];
  const nextItem = next ? itemOf.get(next) : undefined;
  if (nextItem?.parentNode === log) {
    log.insertBefore(item, nextItem);
    placeEntry(nextItem, next, entry);
  } else {
    log.append(item);
  }
  const ours = entry.user && me && entry.user.id === me.id;
  if (ours || nearEnd) log.scrollTop = log.scrollHeight;
}

/** Take an entry's line out of the log (its neighbour's day and group follow). */
export function removeEntry(room, entry) {
  const item = itemOf.get(entry);
  if (!item) return;
  const log = item.parentElement;
  const after = item.nextElementSibling;
  item.remove();
  const next = after ? entryOf.get(after) : undefined;
  if (next) placeEntry(after, next, room.entries[room.entries.indexOf(next) - 1]);
  if (log && !log.children.length) log.append(emptyItem(room));
}

/** The line an empty log shows. */
function emptyItem(room) {
  const empty = document.createElement("li");
  empty.className = "entry entry-empty";
  empty.textContent = room ? "No messages yet. Say hello!" : "You are not in any room: join one.";
  return empty;
}

/** Rebuild `log` for `room` (null: no room), scrolled to the end. */
export function renderLog(log, room, me) {
  // Rebuilding the log is not news: keep screen readers from reading it all out (the live
  // region is the log's wrapper).
  const region = log.parentElement ?? log;
  region.setAttribute("aria-busy", "true");
  const items = [];
  if (room) {
    room.entries.forEach((entry, index) => {
      const item = entryElement(entry, me);
      placeEntry(item, entry, room.entries[index - 1]);
      items.push(item);
    });
  }
  if (!items.length) items.push(emptyItem(room));
  log.replaceChildren(...items);
  log.scrollTop = log.scrollHeight;
  region.setAttribute("aria-busy", "false");
}
