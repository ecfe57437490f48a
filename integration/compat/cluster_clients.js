// ioredis's Cluster against dkv: bootstrap through one node (CLUSTER SLOTS),
// the checks of ioredis_compat.js that a cluster client can run (a pipeline
// or MULTI holds keys of one slot), replica reads (scaleReads: "slave",
// READONLY connections), then, once the test has killed the leader, keep
// writing until the client follows the new topology.
//
// Usage: node cluster_clients.js HOST PORT LEADER_ADDR
// Phase 1 ends with the line `phase1 done`; the script then reads one line
// `go KILLED_ADDR` from stdin. Every wait is bounded.
"use strict";
const Redis = require("ioredis");
const { check, fail } = require("./checks");

const [host, port, leader] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const DEADLINE_MS = 60000;
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

function connect(options) {
  const cluster = new Redis.Cluster([{ host, port }], {
    enableReadyCheck: true,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    slotsRefreshTimeout: 2000,
    ...options,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("cluster not ready in 20 s")), 20000);
    cluster.once("ready", () => { clearTimeout(timer); resolve(cluster); });
  });
}

// Runs f until it succeeds, for at most DEADLINE_MS (across a failover).
async function retry(what, f) {
  const deadline = Date.now() + DEADLINE_MS;
  for (let attempts = 1; ; attempts++) {
    try {
      return [await f(), attempts];
    } catch (e) {
      if (Date.now() > deadline) fail(`${what}: still failing after ${attempts} attempts: ${e.message}`);
      await sleep(200);
    }
  }
}

function goLine() {
  return new Promise((resolve) => {
    let text = "";
    process.stdin.on("data", (chunk) => {
      text += chunk;
      const end = text.indexOf("\n");
      if (end >= 0) resolve(text.slice(0, end).trim().split(" "));
    });
    process.stdin.on("end", () => resolve(text.trim().split(" ")));
  });
}

const address = (node) => `${node.options.host}:${node.options.port}`;

async function main() {
  const c = await connect({});
  const masters = c.nodes("master").map(address);
  check("bootstrap: one master, the raft leader", masters.length === 1 && masters[0] === leader, masters);
  check("bootstrap: 3 nodes", c.nodes("all").length === 3, c.nodes("all").map(address));
  check("slot 12182 served by the leader", c.slots[12182] && c.slots[12182][0] === leader, c.slots[12182]);
  check("cluster keyslot", (await c.cluster("KEYSLOT", "foo")) === 12182);
  const info = await c.cluster("INFO");
  check("cluster info", info.startsWith("cluster_state:ok"), info);

  // The checks of ioredis_compat.js, in a cluster client's idiom.
  await Promise.all(c.nodes("master").map((m) => m.flushdb()));
  check("set/get", (await c.set("a", "1")) === "OK" && (await c.get("a")) === "1");
  const p = c.pipeline();
  for (let i = 0; i < 100; i++) p.set(`{p}k${i}`, i);
  p.incr("{p}k0");
  const out = await p.exec();
  check("pipeline (one slot)", out.length === 101 && out[100][1] === 1, out.slice(98));
  const tx = await c.multi().set("{t}t", "x").get("{t}t").hset("{t}h", "f", "1", "g", "2").exec();
  check("multi/exec (one slot)", JSON.stringify(tx) === JSON.stringify([[null, "OK"], [null, "x"], [null, 2]]), tx);
  await c.set("e", "v", "EX", 100);
  const ttl = await c.ttl("e");
  check("ttl", ttl >= 99 && ttl <= 100, ttl);
  await c.set("short", "v", "PX", 200);
  await sleep(400);
  check("expired", (await c.get("short")) === null);
  const keys = new Set();
  await new Promise((resolve, reject) => {
    const s = c.nodes("master")[0].scanStream({ match: "{p}k*", count: 7 });
    s.on("data", (batch) => batch.forEach((k) => keys.add(k)));
    s.on("end", resolve);
    s.on("error", reject);
  });
  check("scanStream (on the master)", keys.size === 100, keys.size);
  await c.hset("h", "f", "1", "g", "2");
  const h = await c.hgetall("h");
  check("hgetall", h.f === "1" && h.g === "2", h);
  try {
    await c.hget("a", "f");
    check("wrongtype", false);
  } catch (e) {
    check("wrongtype", String(e.message).startsWith("WRONGTYPE"), e.message);
  }
  const both = await c.mget("{t}t", "{t}missing");
  check("mget (one slot)", both.length === 2 && both[0] === "x" && both[1] === null, both);

  // Replica reads: READONLY connections to the followers, possibly stale.
  const replicas = await connect({ scaleReads: "slave" });
  await replicas.set("r", "1");
  const deadline = Date.now() + 10000;
  while ((await replicas.get("r")) !== "1") {
    check("replica read catches up", Date.now() < deadline);
    await sleep(50);
  }
  for (let i = 0; i < 20; i++) await replicas.get("r");
  let readonly = 0;
  for (const node of c.nodes("slave")) {
    const direct = new Redis({ host: node.options.host, port: node.options.port, lazyConnect: true });
    const list = await direct.client("LIST");
    readonly += list.split("\n").filter((l) => / flags=\S*r/.test(l)).length;
    direct.disconnect();
  }
  check("reads served by READONLY replica connections", readonly > 0, readonly);
  replicas.disconnect();

  console.log("phase1 done");
  const line = await goLine();
  check("got the go line", line.length === 2 && line[0] === "go", line);
  const killed = line[1];

  const [, attempts] = await retry("first write after the leader kill", () => c.set("after0", "0"));
  console.log(`first write after the kill took ${attempts} attempts`);
  for (let i = 1; i < 50; i++) await retry(`write after${i}`, () => c.set(`after${i}`, String(i)));
  for (let i = 0; i < 50; i++) {
    const [v] = await retry(`read after${i}`, () => c.get(`after${i}`));
    if (v !== String(i)) fail(`write after${i} reads back as ${v}`);
  }
  check("writes after the kill", true);
  for (let i = 1; i < 100; i++) {
    const [v] = await retry(`read {p}k${i}`, () => c.get(`{p}k${i}`));
    if (v !== String(i)) fail(`acknowledged write {p}k${i} lost: ${v}`);
  }
  check("acknowledged writes survived", true);
  const now = c.nodes("master").map(address);
  check("the client follows the new leader", now.length === 1 && now[0] !== killed && c.slots[0][0] === now[0], { now, killed });
  c.disconnect();
  console.log("ioredis cluster: all checks passed");
  process.exit(0);
}

const watchdog = setTimeout(() => fail("script deadline (150 s) passed"), 150000);
watchdog.unref();
main().catch((e) => fail(e.stack || e));
