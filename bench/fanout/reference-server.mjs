// The reference: a plain Node socket.io 4 server doing realtime-service's fan-out job, written
// the way the socket.io documentation does it (one room per poll, `io.to(room).emit`).
//
// Usage: node reference-server.mjs PORT < snapshots
// stdin: `poll-updates` snapshots, one JSON document per line (bench.mjs pipes in
//   `kcat -C` reading the benchmark's topic, so both servers get the same Kafka messages).
// Socket.IO, as in docs/api.md: `join` {pollId} or {code} joins `poll:{id}` and is acknowledged
// with the newest snapshot; every newer snapshot goes to the room as `poll-results`, plus one
// `poll-stats` {pollId, optionId, newCount} per option whose count changed; a snapshot whose
// `seq` is not newer than the last one broadcast is dropped. `leave` leaves the room.
// Not done here (realtime-service does it): token checks, results visibility, the database
// and Redis lookups of a join, presence across replicas. None of it runs while the benchmark
// measures (every screen has joined by then), except presence's one Redis round trip a second.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";

const port = Number(process.argv[2] || 3499);
const httpServer = createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404).end();
});
const io = new Server(httpServer, {
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 16 * 1024,
  serveClient: false,
});

const latest = new Map(); // poll id → newest snapshot broadcast
const room = (pollId) => `poll:${pollId}`;

io.on("connection", (socket) => {
  socket.on("join", (request, ack) => {
    const pollId = request && (request.pollId || request.code);
    const reply =
      typeof pollId === "string"
        ? latest.get(pollId) || { pollId, seq: 0, total: 0, status: "open", options: [] }
        : { code: "invalid_request", message: "`join` expects {pollId} or {code}" };
    if (typeof pollId === "string") socket.join(room(pollId));
    if (typeof ack === "function") ack(reply);
  });
  socket.on("leave", (request, ack) => {
    const pollId = request && (request.pollId || request.code);
    if (typeof pollId === "string") socket.leave(room(pollId));
    if (typeof ack === "function") ack({ pollId, left: true });
  });
});

function publish(snapshot) {
  const previous = latest.get(snapshot.pollId);
  if (previous && previous.seq >= snapshot.seq) return;
  latest.set(snapshot.pollId, snapshot);
  io.to(room(snapshot.pollId)).emit("poll-results", snapshot);
  const before = new Map((previous ? previous.options : []).map((o) => [o.optionId, o.votes]));
  for (const option of snapshot.options) {
    if (before.get(option.optionId) !== option.votes) {
      io.to(room(snapshot.pollId)).emit("poll-stats", {
        pollId: snapshot.pollId,
        optionId: option.optionId,
        newCount: option.votes,
      });
    }
  }
}

createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  try {
    publish(JSON.parse(line));
  } catch (err) {
    console.error(`undecodable snapshot skipped: ${err.message}`);
  }
});

httpServer.listen(port, "0.0.0.0", () => console.error(`reference server on :${port}`));
