// A real socket.io-client 4.x, driven by the Rust tests through stdin/stdout.
//
// Usage: node client.mjs URL
// stdin:  one JSON command per line: {"id": 1, "emit": "join", "data": {...}}
// stdout: one JSON line per happening:
//   {"event": "connect"} | {"event": "disconnect", "reason": ...}
//   {"event": "ack", "id": 1, "data": ...}          (acknowledgement of command 1)
//   {"event": "<server event>", "data": ..., "receivedAt": <ms since epoch>}
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const url = process.argv[2];
if (!url) {
  console.error("usage: node client.mjs URL");
  process.exit(2);
}

const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const socket = io(url, { transports: ["websocket"], reconnection: false, timeout: 10000 });

socket.on("connect", () => print({ event: "connect" }));
socket.on("connect_error", (err) => print({ event: "connect_error", message: String(err && err.message) }));
socket.on("disconnect", (reason) => print({ event: "disconnect", reason }));
socket.onAny((event, data) => print({ event, data, receivedAt: Date.now() }));

const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  if (!line.trim()) return;
  const { id, emit, data } = JSON.parse(line);
  socket.timeout(10000).emit(emit, data, (err, reply) => {
    print(err ? { event: "ack_timeout", id } : { event: "ack", id, data: reply });
  });
});
// The test closed our stdin: it is done with us.
commands.on("close", () => {
  socket.close();
  setTimeout(() => process.exit(0), 50);
});
