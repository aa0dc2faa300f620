// One load-driver process: opens a share of the benchmark's screens with the official
// socket.io-client, joins them to the poll, and counts what they receive. Started by bench.mjs
// (child_process.fork) and driven over IPC; several run at once, as one Node process cannot
// keep up with tens of thousands of sockets.
//
// Messages from bench.mjs:
//   {cmd: "connect", url, count, localAddresses, pollId, concurrency} → {joined, failed, errors}
//   {cmd: "mark"}    counters to zero: the measured window starts  → {ok}
//   {cmd: "progress"}  what arrived since the mark                    → {results, stats, lastAt}
//   {cmd: "report", expectedResults, expectedStats}                  → counters and histogram
//   {cmd: "close"}   disconnects every socket and exits
import { io } from "socket.io-client";

/** Delivery latency histogram: 1 ms buckets up to HISTOGRAM_MS, the last one open-ended. */
const HISTOGRAM_MS = 60_000;

const sockets = [];
let counters = fresh();

function fresh() {
  return {
    results: 0,
    stats: 0,
    other: 0,
    lastAt: 0,
    latency: new Uint32Array(HISTOGRAM_MS + 1),
    perSocket: new Map(), // socket index → [results, stats]
  };
}

function count(index, kind) {
  let seen = counters.perSocket.get(index);
  if (!seen) {
    seen = [0, 0];
    counters.perSocket.set(index, seen);
  }
  seen[kind] += 1;
}

function openScreen(index, url, localAddress, pollId) {
  return new Promise((resolve) => {
    const socket = io(url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      timeout: 30_000,
      localAddress,
    });
    sockets.push(socket);
    let settled = false;
    const settle = (outcome) => {
      if (!settled) {
        settled = true;
        resolve(outcome);
      }
    };
    socket.on("connect_error", (err) => settle(`connect_error: ${err.message}`));
    socket.on("disconnect", (reason) => settle(`disconnect: ${reason}`));
    socket.on("poll-results", (snapshot) => {
      const now = Date.now();
      counters.results += 1;
      counters.lastAt = now;
      const ms = Math.max(0, Math.min(HISTOGRAM_MS, now - Date.parse(snapshot.at)));
      counters.latency[ms] += 1;
      count(index, 0);
    });
    socket.on("poll-stats", () => {
      counters.stats += 1;
      counters.lastAt = Date.now();
      count(index, 1);
    });
    socket.onAny((event) => {
      if (event !== "poll-results" && event !== "poll-stats") counters.other += 1;
    });
    socket.on("connect", () => {
      socket.timeout(60_000).emit("join", { pollId }, (err, reply) => {
        if (err) settle("join: no acknowledgement");
        else if (reply && reply.code) settle(`join: ${reply.code}`);
        else settle("joined");
      });
    });
  });
}

async function connect({ url, count: total, localAddresses, pollId, concurrency }) {
  let next = 0;
  let joined = 0;
  const errors = new Map();
  const worker = async () => {
    while (next < total) {
      const index = next++;
      const address = localAddresses[index % localAddresses.length];
      const outcome = await openScreen(index, url, address, pollId);
      if (outcome === "joined") joined += 1;
      else errors.set(outcome, (errors.get(outcome) || 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { joined, failed: total - joined, errors: Object.fromEntries(errors) };
}

function report({ expectedResults, expectedStats }) {
  // Screens that received less than every update (missed) or more (repeated).
  let short = 0;
  let extra = 0;
  for (let index = 0; index < sockets.length; index++) {
    if (!sockets[index].connected) continue;
    const [results, stats] = counters.perSocket.get(index) || [0, 0];
    if (results < expectedResults || stats < expectedStats) short += 1;
    if (results > expectedResults || stats > expectedStats) extra += 1;
  }
  const connected = sockets.filter((s) => s.connected).length;
  return {
    connected,
    results: counters.results,
    stats: counters.stats,
    other: counters.other,
    lastAt: counters.lastAt,
    short,
    extra,
    latency: Array.from(counters.latency),
  };
}

process.on("message", async (message) => {
  switch (message.cmd) {
    case "connect":
      process.send(await connect(message));
      break;
    case "mark":
      counters = fresh();
      process.send({ ok: true });
      break;
    case "progress":
      process.send({ results: counters.results, stats: counters.stats, lastAt: counters.lastAt });
      break;
    case "report":
      process.send(report(message));
      break;
    case "close":
      for (const socket of sockets) socket.close();
      setTimeout(() => process.exit(0), 200);
      break;
    default:
      process.send({ error: `unknown command ${message.cmd}` });
  }
});
process.on("disconnect", () => process.exit(0));
