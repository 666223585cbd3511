// HTTP calls of the chat page. Every function resolves to { ok, status, data } and never throws
// for an HTTP error; a network failure (server down) resolves with status 0.

async function call(method, url, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    return { ok: false, status: 0, data: null };
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  return { ok: response.ok, status: response.status, data };
}

/** Who is signed in: `data` is `{user, expires_at}`, or a 401 whose `data.detail` says why. */
export const getSession = () => call("GET", "/api/session");

/** Sign in with a display name; the server sets the token cookie. */
export const signIn = (name) => call("POST", "/api/session", { name });

/** Sign out: the server clears the token cookie. */
export const signOut = () => call("DELETE", "/api/session");

/** The last messages of a room, oldest first: `data.messages`. */
export const getHistory = (room) => call("GET", `/api/rooms/${encodeURIComponent(room)}/messages`);

/** A room's members: `data.members`, the online ones first, then those seen before (`last_seen`). */
export const getMembers = (room) => call("GET", `/api/rooms/${encodeURIComponent(room)}/members`);

/** A sentence for the user out of an error response (FastAPI's `detail`, in its several shapes). */
export function describeError(result, fallback) {
  const detail = result?.data?.detail;
  if (result?.status === 0) return "The server cannot be reached. Check that it is running, then try again.";
  if (typeof detail === "string") return detail;
  if (detail && typeof detail.message === "string") return detail.message;
  if (Array.isArray(detail) && detail.length) {
    return detail.map((error) => error.msg.replace(/^Value error, /, "")).join(" ");
  }
  return fallback;
}
