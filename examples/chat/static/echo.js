// The guide's echo page: one WebSocket to /echo, every message comes straight back.
const lines = document.getElementById("lines");
const text = document.getElementById("text");
const status = document.getElementById("status");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/echo");

ws.onopen = () => { status.textContent = "Connected :)"; };
ws.onclose = () => { status.textContent = "Disconnected :("; };
ws.onmessage = (msg) => {
  const line = document.createElement("li");
  line.textContent = msg.data;
  lines.prepend(line);
};
document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  ws.send(text.value);
  text.value = "";
});
