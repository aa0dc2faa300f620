// Fan-out benchmark driver: the same socket.io-client load on each server in turn, the same
// snapshots fed to each at a fixed rate, and what each server spent delivering them.
//
// Usage: node bench.mjs --server NAME,URL,PID,TOPIC [--server ...] --poll-id ID
//          --option-ids ID,ID,... [--sockets N] [--rate R] [--duration S] [--drivers K]
//          [--per-address N] [--brokers HOSTS] [--json FILE]
// scripts/bench-fanout starts the servers and runs this; see BENCHMARKS.md.
//
// Per server (a phase), in the order given:
//   1. resident memory (VmRSS) before any screen connects;
//   2. K driver processes (screens.mjs) open N sockets from loopback addresses 127.0.P.x (P the
//      phase, N/per-address of them) and each emits `join` {pollId}; memory once all joined;
//   3. two warm-up snapshots, until every screen has them (the feed works end to end);
//   4. the measured window: R snapshots a second for S seconds (open loop: snapshot i is due
//      at start + i/R), each with every option's count changed, so each screen is owed one
//      `poll-results` and one `poll-stats` per option per snapshot; it ends when every
//      delivery arrived, or 15 s after the last snapshot. Server CPU (utime+stime from
//      /proc/PID/stat) over that window.
// Snapshots go to the server's own Kafka topic through Kafka's console producer;
// realtime-service consumes it, the reference server reads it through `kcat -C` on its stdin.
import { execFileSync, fork, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    server: { type: "string", multiple: true },
    "poll-id": { type: "string" },
    "option-ids": { type: "string" },
    sockets: { type: "string", default: "1000" },
    rate: { type: "string", default: "2" },
    duration: { type: "string", default: "10" },
    drivers: { type: "string", default: "4" },
    "per-address": { type: "string", default: "5000" },
    brokers: { type: "string", default: "127.0.0.1:9092" },
    json: { type: "string" },
  },
});

const SETTLE_MS = 15_000;
const WARM_UP = 2;
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

const servers = (args.server || []).map((spec) => {
  const [name, url, pid, topic] = spec.split(",");
  if (!name || !url || !pid || !topic) throw new Error(`--server NAME,URL,PID,TOPIC, got ${spec}`);
  return { name, url, pid: Number(pid), topic };
});
const pollId = args["poll-id"];
const optionIds = (args["option-ids"] || "").split(",").filter(Boolean);
if (!servers.length || !pollId || !optionIds.length) {
  console.error("usage: node bench.mjs --server NAME,URL,PID,TOPIC --poll-id ID --option-ids IDS");
  process.exit(2);
}
const sockets = Number(args.sockets);
const rate = Number(args.rate);
const duration = Number(args.duration);
const driverCount = Math.max(1, Math.min(Number(args.drivers), sockets));
const perAddress = Number(args["per-address"]);

const log = (line) => process.stderr.write(`--> ${line}\n`);

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Resident memory of a process, in KiB. */
function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

let seq = 1000;
function nextSnapshot() {
  seq += 1;
  const options = optionIds.map((optionId, j) => ({ optionId, votes: seq * (j + 1) }));
  return {
    v: 1,
    pollId,
    seq,
    total: options.reduce((sum, o) => sum + o.votes, 0),
    status: "open",
    options,
    at: new Date().toISOString(),
  };
}

/**
 * Apache Kafka's console producer (scripts/kafka-console-producer) producing `key<TAB>value`
 * lines to `topic` as they come. (`kcat -P` 1.7 holds piped input back until it ends.)
 */
function producer(topic) {
  const tool = new URL("../../scripts/kafka-console-producer", import.meta.url).pathname;
  const child = spawn(
    tool,
    ["--bootstrap-server", args.brokers, "--topic", topic, "--reader-property", "parse.key=true",
      "--reader-property", "key.separator=\t", "--command-property", "linger.ms=1",
      "--command-property", "acks=1"],
    { stdio: ["pipe", "ignore", "inherit"] },
  );
  return {
    send: (snapshot) => child.stdin.write(`${pollId}\t${JSON.stringify(snapshot)}\n`),
    close: () =>
      new Promise((resolve) => {
        child.on("exit", resolve);
        child.stdin.end();
      }),
  };
}

/** A driver process, asked questions over its IPC channel (one answer per question, in order). */
function driver() {
  const child = fork(new URL("./screens.mjs", import.meta.url), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const waiting = [];
  child.on("message", (message) => waiting.shift()(message));
  return {
    pid: child.pid,
    ask: (message) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.send(message);
      }),
    close: () =>
      new Promise((resolve) => {
        child.on("exit", resolve);
        child.send({ cmd: "close" });
      }),
  };
}

const sum = (items, key) => items.reduce((total, item) => total + item[key], 0);

async function progress(drivers) {
  const answers = await Promise.all(drivers.map((d) => d.ask({ cmd: "progress" })));
  return { delivered: sum(answers, "results") + sum(answers, "stats"), lastAt: Math.max(...answers.map((a) => a.lastAt)) };
}

function percentiles(histogram) {
  const total = histogram.reduce((a, b) => a + b, 0);
  const at = (q) => {
    let seen = 0;
    for (let ms = 0; ms < histogram.length; ms++) {
      seen += histogram[ms];
      if (seen >= q * total) return ms;
    }
    return histogram.length - 1;
  };
  let max = 0;
  histogram.forEach((n, ms) => {
    if (n) max = ms;
  });
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max };
}

async function phase(server, index) {
  log(`${server.name}: ${sockets} sockets on ${server.url} (pid ${server.pid}), load average ${loadAverage()}`);
  const rssBefore = rssKiB(server.pid);
  const addresses = Array.from(
    { length: Math.max(1, Math.ceil(sockets / perAddress)) },
    (_, i) => `127.0.${index + 1}.${i + 1}`,
  );
  const drivers = Array.from({ length: driverCount }, driver);
  const connectStarted = Date.now();
  const joins = await Promise.all(
    drivers.map((d, i) =>
      d.ask({
        cmd: "connect",
        url: server.url,
        count: Math.floor(sockets / driverCount) + (i < sockets % driverCount ? 1 : 0),
        localAddresses: addresses,
        pollId,
        concurrency: 50,
      }),
    ),
  );
  const joined = sum(joins, "joined");
  const errors = {};
  for (const j of joins) for (const [k, n] of Object.entries(j.errors)) errors[k] = (errors[k] || 0) + n;
  log(`${server.name}: ${joined}/${sockets} joined in ${((Date.now() - connectStarted) / 1000).toFixed(1)} s from ${addresses.length} addresses${Object.keys(errors).length ? `; failures ${JSON.stringify(errors)}` : ""}`);
  await sleep(3000);
  const rssJoined = rssKiB(server.pid);

  const feed = producer(server.topic);
  const perSnapshot = 1 + optionIds.length;
  // Warm-up: the feed works end to end before anything is measured.
  await Promise.all(drivers.map((d) => d.ask({ cmd: "mark" })));
  for (let i = 0; i < WARM_UP; i++) {
    feed.send(nextSnapshot());
    await sleep(500);
  }
  const warmDeadline = Date.now() + 30_000;
  while ((await progress(drivers)).delivered < joined * perSnapshot * WARM_UP && Date.now() < warmDeadline) {
    await sleep(250);
  }
  const warm = await progress(drivers);
  log(`${server.name}: warm-up ${warm.delivered}/${joined * perSnapshot * WARM_UP} delivered`);
  await sleep(1000);

  const count = Math.round(rate * duration);
  const expected = joined * perSnapshot * count;
  await Promise.all(drivers.map((d) => d.ask({ cmd: "mark" })));
  const cpuStart = cpuSeconds(server.pid);
  const driverCpuStart = drivers.reduce((t, d) => t + cpuSeconds(d.pid), 0);
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    feed.send(nextSnapshot());
  }
  const lastSent = Date.now();
  let seen = await progress(drivers);
  while (seen.delivered < expected && Date.now() - lastSent < SETTLE_MS) {
    await sleep(100);
    seen = await progress(drivers);
  }
  const cpu = cpuSeconds(server.pid) - cpuStart;
  const driverCpu = drivers.reduce((t, d) => t + cpuSeconds(d.pid), 0) - driverCpuStart;
  const window = (Math.max(seen.lastAt, lastSent) - start) / 1000;
  const rssEnd = rssKiB(server.pid);
  const reports = await Promise.all(
    drivers.map((d) => d.ask({ cmd: "report", expectedResults: count, expectedStats: count * optionIds.length })),
  );
  const histogram = new Array(reports[0].latency.length).fill(0);
  for (const r of reports) r.latency.forEach((n, ms) => (histogram[ms] += n));
  await feed.close();
  await Promise.all(drivers.map((d) => d.close()));
  const delivered = sum(reports, "results") + sum(reports, "stats");
  const result = {
    server: server.name,
    sockets,
    joined,
    snapshots: count,
    rate,
    expected,
    delivered,
    missed: Math.max(0, expected - delivered),
    screensShort: sum(reports, "short"),
    screensWithRepeats: sum(reports, "extra"),
    otherEvents: sum(reports, "other"),
    windowSeconds: window,
    serverCpuSeconds: cpu,
    deliveriesPerCpuSecond: delivered / cpu,
    driverCpuSeconds: driverCpu,
    rssBeforeKiB: rssBefore,
    rssJoinedKiB: rssJoined,
    rssEndKiB: rssEnd,
    kibPerConnection: (rssJoined - rssBefore) / joined,
    latencyMs: percentiles(histogram),
    loadAverage: loadAverage(),
  };
  log(`${server.name}: ${delivered}/${expected} delivered, ${cpu.toFixed(2)} CPU-s, ${Math.round(result.deliveriesPerCpuSecond)} deliveries per CPU-s, RSS ${(rssBefore / 1024).toFixed(1)} → ${(rssJoined / 1024).toFixed(1)} MiB (${result.kibPerConnection.toFixed(1)} KiB per connection), latency p50 ${result.latencyMs.p50} ms p99 ${result.latencyMs.p99} ms`);
  return result;
}

const results = [];
for (const [index, server] of servers.entries()) {
  results.push(await phase(server, index));
  await sleep(2000);
}

const rows = [
  ["server", "joined", "delivered/expected", "missed", "CPU-s", "deliveries/CPU-s", "RSS before→joined MiB", "KiB/conn", "latency p50/p99/max ms", "load avg"],
  ...results.map((r) => [
    r.server,
    `${r.joined}/${r.sockets}`,
    `${r.delivered}/${r.expected}`,
    String(r.missed),
    r.serverCpuSeconds.toFixed(2),
    String(Math.round(r.deliveriesPerCpuSecond)),
    `${(r.rssBeforeKiB / 1024).toFixed(1)}→${(r.rssJoinedKiB / 1024).toFixed(1)}`,
    r.kibPerConnection.toFixed(1),
    `${r.latencyMs.p50}/${r.latencyMs.p99}/${r.latencyMs.max}`,
    r.loadAverage,
  ]),
];
const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c])).join("  "));
const reference = results.find((r) => r.server === "node");
if (reference) {
  for (const r of results.filter((x) => x !== reference)) {
    console.log(
      `${r.server} / node: ${(r.deliveriesPerCpuSecond / reference.deliveriesPerCpuSecond).toFixed(2)}× deliveries per CPU-second, ` +
        `${(r.rssJoinedKiB / reference.rssJoinedKiB).toFixed(2)}× resident memory with all joined, ` +
        `${(r.kibPerConnection / reference.kibPerConnection).toFixed(2)}× memory per connection`,
    );
  }
}
if (args.json) writeFileSync(args.json, JSON.stringify(results, null, 2));
const incomplete = results.some((r) => r.joined < r.sockets || r.missed > 0);
process.exit(incomplete ? 1 : 0);
