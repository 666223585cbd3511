// Rooms: one WebSocket per room at /rooms/{room}?name=...; what anyone says is broadcast
// to the room. The topic is the path, so the name in the query does not split the room.
const $ = (id) => document.getElementById(id);
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
let socket = null;

function show(text) {
  const line = document.createElement("li");
  line.textContent = text;
  $("lines").append(line);
  line.scrollIntoView({ block: "nearest" });
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  if (socket) socket.close(1000, "switching rooms");
  const room = encodeURIComponent($("room").value.trim());
  const name = encodeURIComponent($("name").value.trim());
  $("lines").replaceChildren();
  socket = new WebSocket(`${scheme}${location.host}/rooms/${room}?name=${name}`);
  socket.onopen = () => { $("status").textContent = `In #${decodeURIComponent(room)}`; $("say").hidden = false; };
  socket.onclose = (e) => { $("status").textContent = `Disconnected (${e.code})`; $("say").hidden = true; };
  socket.onmessage = (e) => show(e.data);
});

$("say").addEventListener("submit", (event) => {
  event.preventDefault();
  socket.send($("text").value);
  $("text").value = "";
});
