// Queue idioms with ioredis against a dkv cluster, each checked for lost,
// duplicated and misordered jobs. Run by integration/tests/queue_idioms.rs:
//
//     node queue_idioms.js LEADER_HOST:PORT FOLLOWER_HOST:PORT
//
// The same four idioms as queue_idioms.py, in ioredis's idiom: async workers,
// each with its own connection (a blocked BRPOP holds it), spread over both
// nodes; pipelines and MULTI as ioredis builds them. Every wait is bounded;
// the script exits non-zero on the first failed check.
"use strict";
const Redis = require("ioredis");
const { fail, check } = require("./checks");

const DEADLINE = Date.now() + 60000;

const open = [];
function conn(addr) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
  const c = new Redis({ host, port, maxRetriesPerRequest: 1, retryStrategy: () => null, commandTimeout: 10000 });
  open.push(c);
  return c;
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));

async function brpopQueue(leader, follower) {
  const r = conn(leader);
  await r.del("q", "q:done");
  await r.lpush("q", ...range(50, (i) => `o${i}`));
  const w = conn(follower);
  const order = [];
  for (;;) {
    const item = await w.brpop("q", 1);
    if (item === null) break;
    order.push(item[1]);
  }
  check("brpop: one worker pops in push order (FIFO)", JSON.stringify(order) === JSON.stringify(range(50, (i) => `o${i}`)), order.slice(0, 5));

  const jobs = range(400, (i) => `j${i}`);
  let produced = false;
  const seen = range(4, () => []);
  const worker = async (n) => {
    const c = conn(n % 2 === 0 ? leader : follower);
    while (Date.now() < DEADLINE) {
      const item = await c.brpop("q", 1);
      if (item === null) {
        if (produced) return;
        continue;
      }
      seen[n].push(item[1]);
      await c.sadd("q:done", item[1]);
    }
  };
  const producer = async (addr, part) => {
    const c = conn(addr);
    for (let i = 0; i < part.length; i += 20) await c.lpush("q", ...part.slice(i, i + 20));
  };
  const workers = range(4, (n) => worker(n));
  await Promise.all([producer(leader, jobs.filter((_, i) => i % 2 === 0)), producer(follower, jobs.filter((_, i) => i % 2 === 1))]);
  produced = true;
  await Promise.all(workers);
  const got = seen.flat();
  check("brpop: 4 workers, 400 jobs, none lost", new Set(got).size === 400 && jobs.every((j) => got.includes(j)), new Set(got).size);
  check("brpop: no job handed out twice", got.length === 400, got.length);
  check("brpop: SCARD q:done 400", (await r.scard("q:done")) === 400);
  // Within one worker, one producer's jobs come in push order.
  for (const [n, s] of seen.entries()) {
    for (const parity of [0, 1]) {
      const idx = s.map((j) => Number(j.slice(1))).filter((i) => i % 2 === parity);
      if (idx.some((v, i) => i > 0 && idx[i - 1] > v)) fail(`brpop: worker ${n} saw a producer's jobs out of order`);
    }
  }
  console.log(`ok brpop: per-worker counts ${JSON.stringify(seen.map((s) => s.length))}`);
}

async function reliableQueue(leader, follower) {
  const r = conn(leader);
  await r.del("rq", "rq:done", ...range(3, (n) => `rq:processing:${n}`));
  const jobs = range(200, (i) => `r${i}`);
  await r.lpush("rq", ...jobs);
  // Worker 2 "crashes" right after moving a job to its processing list.
  const crashed = await conn(follower).blmove("rq", "rq:processing:2", "RIGHT", "LEFT", 1);
  check("blmove: the oldest job moves to the processing list", crashed === "r0", crashed);
  check("blmove: it is in the processing list, no longer in the queue",
    JSON.stringify(await r.lrange("rq:processing:2", 0, -1)) === '["r0"]' && (await r.llen("rq")) === 199);
  const done = [[], []];
  const worker = async (n, addr) => {
    const c = conn(addr);
    const mine = `rq:processing:${n}`;
    while (Date.now() < DEADLINE) {
      const job = await c.blmove("rq", mine, "RIGHT", "LEFT", 1);
      if (job === null) return;
      await c.sadd("rq:done", job);
      done[n].push(job);
      const removed = await c.lrem(mine, 1, job);
      if (removed !== 1) fail(`LREM ${mine} ${job} answered ${removed}`);
    }
  };
  await Promise.all([worker(0, leader), worker(1, follower)]);
  const reaper = conn(follower);
  const back = await reaper.lmove("rq:processing:2", "rq", "RIGHT", "RIGHT");
  check("lmove: the reaper puts the crashed worker's job back", back === "r0", back);
  check("lmove: the processing list is gone once empty", (await reaper.exists("rq:processing:2")) === 0);
  await worker(1, follower);
  const got = done.flat();
  check("reliable queue: 200 jobs, none lost", new Set(got).size === 200, new Set(got).size);
  check("reliable queue: none done twice", got.length === 200, got.length);
  const lens = await Promise.all(range(3, (n) => r.llen(`rq:processing:${n}`)));
  check("reliable queue: processing lists empty", lens.every((l) => l === 0), lens);
  console.log(`ok reliable queue: per-worker counts ${JSON.stringify(done.map((d) => d.length))}`);
}

async function delayedJobs(leader, follower) {
  const r = conn(leader);
  await r.del("delayed", "ready");
  let base = Date.now();
  let due = Object.fromEntries(range(50, (i) => [`d${i}`, base + 40 * ((i * 7) % 25)]));
  await r.zadd("delayed", ...Object.entries(due).flatMap(([j, s]) => [s, j]));
  const c = conn(follower);
  const moved = [];
  while (moved.length < 50 && Date.now() < DEADLINE) {
    const t = Date.now();
    for (const job of await c.zrangebyscore("delayed", "-inf", t, "LIMIT", 0, 10)) {
      if (due[job] > t) fail(`delayed: ${job} due at ${due[job]} returned at ${t}`);
      if ((await c.zrem("delayed", job)) === 1) {
        await c.rpush("ready", job);
        moved.push(job);
      }
    }
    await sleep(10);
  }
  check("delayed: one mover moved all 50", moved.length === 50 && (await r.zcard("delayed")) === 0, moved.length);
  const byDue = Object.keys(due).sort((a, b) => due[a] - due[b] || (a < b ? -1 : a > b ? 1 : 0));
  check("delayed: ready list in due order (ties by member)", JSON.stringify(await r.lrange("ready", 0, -1)) === JSON.stringify(byDue));

  await r.del("delayed", "ready");
  base = Date.now();
  due = Object.fromEntries(range(300, (i) => [`e${i}`, base + 5 * (i % 60)]));
  await r.zadd("delayed", ...Object.entries(due).flatMap(([j, s]) => [s, j]));
  const early = [];
  const counts = {};
  const count = (what, n = 1) => { counts[what] = (counts[what] || 0) + n; };
  const moverZrem = async (addr) => {
    const m = conn(addr);
    while (Date.now() < DEADLINE) {
      const t = Date.now();
      const jobs = await m.zrangebyscore("delayed", "-inf", t, "LIMIT", 0, 20);
      if (jobs.length === 0) {
        if ((await m.zcard("delayed")) === 0) return;
        await sleep(5);
      }
      for (const job of jobs) {
        if (due[job] > t) early.push(job);
        if ((await m.zrem("delayed", job)) === 1) {
          await m.rpush("ready", job);
          count(`ZREM 1 on the ${addr === leader ? "leader" : "follower"}`);
        } else count("zrem lost the race");
      }
    }
  };
  // MULTI without WATCH: ZREM every candidate and RPUSH only those whose ZREM
  // answered 1, in a second step. ioredis's multi().exec() gives each reply.
  const moverMulti = async (addr) => {
    const m = conn(addr);
    while (Date.now() < DEADLINE) {
      const t = Date.now();
      const jobs = await m.zrangebyscore("delayed", "-inf", t, "LIMIT", 0, 20);
      if (jobs.length === 0) {
        if ((await m.zcard("delayed")) === 0) return;
        await sleep(5);
        continue;
      }
      for (const job of jobs) if (due[job] > t) early.push(job);
      const tx = m.multi();
      for (const job of jobs) tx.zrem("delayed", job);
      const replies = await tx.exec();
      const mine = jobs.filter((_, i) => replies[i][0] === null && replies[i][1] === 1);
      if (mine.length > 0) await m.rpush("ready", ...mine);
      count(`MULTI ZREM 1 on the ${addr === leader ? "leader" : "follower"}`, mine.length);
      count("multi: ZREM answered 0", jobs.length - mine.length);
    }
  };
  await Promise.all([moverZrem(leader), moverZrem(follower), moverMulti(leader), moverMulti(follower)]);
  check("delayed: no job moved before it was due", early.length === 0, early.slice(0, 5));
  const ready = await r.lrange("ready", 0, -1);
  check("delayed: 4 racing movers (ZREM reply / ZREMs in MULTI), 300 jobs, none lost", new Set(ready).size === 300, new Set(ready).size);
  check("delayed: none moved twice", ready.length === 300, ready.length);
  console.log(`ok delayed: moves per mover ${JSON.stringify(counts)}`);
}

async function leaderboard(leader, follower) {
  const r = conn(leader);
  await r.del("board");
  const players = range(30, (i) => `p${String(i).padStart(2, "0")}`);
  const expected = Object.fromEntries(players.map((p) => [p, 0]));
  const plans = range(4, (n) => range(300, (k) => [players[k % 30], ((n + 1) * (k % 7)) / 2]));
  for (const plan of plans) for (const [p, inc] of plan) expected[p] += inc;
  await Promise.all(plans.map(async (plan, n) => {
    const c = conn(n % 2 === 0 ? leader : follower);
    for (let i = 0; i < plan.length; i += 50) {
      const p = c.pipeline();
      for (const [player, inc] of plan.slice(i, i + 50)) p.zincrby("board", inc, player);
      const out = await p.exec();
      if (out.some(([e]) => e)) fail(`zincrby pipeline: ${JSON.stringify(out)}`);
    }
  }));
  const f = conn(follower);
  const ranked = [...players].sort((a, b) => expected[a] - expected[b] || (a < b ? -1 : 1));
  const want = [...ranked].reverse().flatMap((p) => [p, String(expected[p])]);
  const got = await f.zrevrange("board", 0, -1, "WITHSCORES");
  check("leaderboard: ZREVRANGE WITHSCORES (on the follower) = the totals, ties by member reversed",
    JSON.stringify(got) === JSON.stringify(want), [got.slice(0, 6), want.slice(0, 6)]);
  for (const p of players) {
    const [rank, rev, score] = await Promise.all([f.zrank("board", p), r.zrevrank("board", p), f.zscore("board", p)]);
    if (rank !== ranked.indexOf(p) || rev !== 29 - ranked.indexOf(p)) fail(`leaderboard: rank of ${p}: ${rank} ${rev}`);
    if (Number(score) !== expected[p]) fail(`leaderboard: score of ${p}: ${score} != ${expected[p]}`);
  }
  check("leaderboard: ZRANK, ZREVRANK, ZSCORE of all 30 players", true);
  check("leaderboard: ZINCRBY on a new member returns the increment", (await r.zincrby("board", 2.5, "new")) === "2.5");
  check("leaderboard: ZRANK of a missing member is null", (await f.zrank("board", "nobody")) === null);
  check("leaderboard: ZCARD 31", (await f.zcard("board")) === 31);
}

async function main() {
  const [leader, follower] = process.argv.slice(2);
  if (!leader || !follower) fail("usage: node queue_idioms.js LEADER_HOST:PORT FOLLOWER_HOST:PORT");
  console.log(`ioredis ${require("ioredis/package.json").version}`);
  const start = Date.now();
  for (const idiom of [brpopQueue, reliableQueue, delayedJobs, leaderboard]) {
    const t = Date.now();
    await idiom(leader, follower);
    console.log(`-- ${idiom.name}: ${((Date.now() - t) / 1000).toFixed(2)} s`);
  }
  open.forEach((c) => c.disconnect());
  console.log(`queue idioms (ioredis): all checks passed in ${((Date.now() - start) / 1000).toFixed(2)} s`);
}

main().catch((e) => fail(e.stack || e));
