// BullMQ end to end against a dkv cluster. Run by integration/tests/bullmq.rs:
//
//     node bullmq_jobs.js QUEUE_ADDR WORKER_ADDR EVENTS_ADDR [chaos]
//
// A Queue connected to QUEUE_ADDR, the Workers to WORKER_ADDR and a
// QueueEvents to EVENTS_ADDR (three different dkv nodes). BULLMQ_JOBS
// (default 1000) jobs in two phases:
//
// 1. Priority: a tenth of the jobs (at most 100) are added with priorities
//    1..5 before any worker runs; one worker with concurrency 1 must then take
//    them in priority order, and in insertion order within a priority (what
//    BullMQ promises for prioritized jobs).
// 2. The rest, added in batches while a worker with concurrency 8 runs: plain
//    jobs, delayed jobs (100..700 ms), jobs that fail 1..3 times first and
//    succeed on the last of their attempts (fixed or exponential backoff),
//    prioritized jobs, and a job scheduler (repeatable job, every 250 ms,
//    5 times).
//
// Checked: every added job and every scheduled repetition completes; the
// QueueEvents sees exactly one `completed` event per job; the completed set
// holds each job once, with the return value of its last attempt; attemptsMade
// equals the configured attempts; no attempt of a delayed job starts before
// its timestamp + delay, and no retry before the failed attempt's end +
// backoff ("not before" checks only, no upper bounds on time). Without
// `chaos` the processor must also run each job exactly as often as its
// attempts; with `chaos` (the test kills the leader when this script prints
// HALFWAY) BullMQ's at-least-once delivery allows a job whose worker lost its
// lock to run again, so that count is only reported, and adds that fail on a
// lost connection are retried with the same job id (BullMQ's add is idempotent
// for a custom id). Every wait is bounded; the script exits non-zero on the
// first failed check and prints `all checks passed` at the end.
"use strict";
const { Queue, Worker, QueueEvents } = require("bullmq");
const { fail, check, hostPort } = require("./checks");

const [queueAddr, workerAddr, eventsAddr, mode] = process.argv.slice(2);
const CHAOS = mode === "chaos";
const TOTAL = Number(process.env.BULLMQ_JOBS || 1000);
const DEADLINE = Date.now() + Number(process.env.BULLMQ_DEADLINE_MS || 150000);
const PRIO_JOBS = Math.min(100, Math.floor(TOTAL / 10));
const REPEAT_LIMIT = 5;
const REPEAT_EVERY = 250;
const started = Date.now();

function connection(addr) {
  return {
    ...hostPort(addr),
    maxRetriesPerRequest: null,
    // Reconnect quickly (a killed node comes back within seconds).
    retryStrategy: (times) => Math.min(100 * times, 1000),
  };
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function until(what, cond) {
  while (!(await cond())) {
    if (Date.now() > DEADLINE) fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// What the processor saw, per job id.
const calls = new Map(); // id -> number of attempts started
const attempts = new Map(); // id -> [{ start, end }]
const successes = new Map(); // id -> number of attempts that returned a value
const plan = new Map(); // id -> { fails, delay, backoff, priority }
const events = new Map(); // id -> completed events seen by QueueEvents
const errors = [];

function backoffFor(spec, attemptsMade) {
  if (spec.type === "fixed") return spec.delay;
  return Math.round(Math.pow(2, attemptsMade - 1) * spec.delay);
}

async function processor(job) {
  const start = Date.now();
  const n = (calls.get(job.id) || 0) + 1;
  calls.set(job.id, n);
  const list = attempts.get(job.id) || [];
  const attempt = { start, end: start, attemptsMade: job.attemptsMade };
  list.push(attempt);
  attempts.set(job.id, list);
  if (job.name === "slow") await sleep(5);
  const p = plan.get(job.id);
  if (p && job.attemptsMade < p.fails) {
    attempt.end = Date.now();
    throw new Error(`planned failure ${job.attemptsMade + 1} of ${p.fails}`);
  }
  attempt.end = Date.now();
  successes.set(job.id, (successes.get(job.id) || 0) + 1);
  return { id: job.id, n: job.data.n };
}

function workerOpts(concurrency) {
  return {
    connection: connection(workerAddr),
    concurrency,
    // Short locks so a job whose worker lost its connection is found
    // stalled and handed out again within seconds, and enough stalls
    // allowed that a failover never fails a job.
    lockDuration: 4000,
    stalledInterval: 2000,
    maxStalledCount: 20,
    drainDelay: 1,
  };
}

async function addRetrying(queue, name, data, opts) {
  for (;;) {
    try {
      return await queue.add(name, data, opts);
    } catch (e) {
      if (!CHAOS || Date.now() > DEADLINE) fail(`add ${opts.jobId}: ${e.message}`);
      errors.push(`add ${opts.jobId}: ${e.message}`);
      await sleep(200);
    }
  }
}

async function main() {
  const name = `bq${process.pid}`;
  const queue = new Queue(name, { connection: connection(queueAddr) });
  queue.on("error", (e) => errors.push(`queue: ${e.message}`));
  const qe = new QueueEvents(name, { connection: connection(eventsAddr) });
  qe.on("error", (e) => errors.push(`queue events: ${e.message}`));
  qe.on("completed", ({ jobId }) => events.set(jobId, (events.get(jobId) || 0) + 1));
  await qe.waitUntilReady();
  await queue.waitUntilReady();
  // QueueEvents reads from "$" once its first XREAD runs: let it start.
  await sleep(300);

  // Phase 1: priority order.
  const prio = [];
  for (let i = 0; i < PRIO_JOBS; i++) {
    const id = `p${i}`;
    const priority = 1 + ((i * 7) % 5);
    plan.set(id, { fails: 0, delay: 0, priority });
    prio.push({ id, priority, i });
    await addRetrying(queue, "prio", { n: i }, { jobId: id, priority });
  }
  const order = [];
  const w1 = new Worker(name, async (job) => {
    order.push(job.id);
    return processor(job);
  }, workerOpts(1));
  w1.on("error", (e) => errors.push(`worker1: ${e.message}`));
  await until("the prioritized jobs", async () => order.length >= PRIO_JOBS);
  await w1.close();
  const expected = prio.slice().sort((a, b) => a.priority - b.priority || a.i - b.i).map((p) => p.id);
  // (In a chaos run the kill comes later, in phase 2.)
  check(`priority: ${PRIO_JOBS} jobs taken in priority order, FIFO within a priority`,
    JSON.stringify(order) === JSON.stringify(expected), { order: order.slice(0, 10), expected: expected.slice(0, 10) });

  // Phase 2: everything else, added while a worker runs.
  const w2 = new Worker(name, processor, workerOpts(8));
  w2.on("error", (e) => errors.push(`worker2: ${e.message}`));
  await queue.upsertJobScheduler("tick", { every: REPEAT_EVERY, limit: REPEAT_LIMIT }, { name: "tick", data: { n: -1 } });
  const ids = prio.map((p) => p.id);
  let halfway = false;
  const rest = TOTAL - PRIO_JOBS;
  for (let i = 0; i < rest; i++) {
    const id = `j${i}`;
    const p = { fails: 0, delay: 0, priority: 0 };
    const opts = { jobId: id };
    if (i % 10 === 1) {
      p.delay = 100 + (i % 7) * 100;
      opts.delay = p.delay;
    }
    if (i % 7 === 3) {
      p.fails = 1 + (i % 3);
      p.backoff = i % 2 === 0 ? { type: "fixed", delay: 50 } : { type: "exponential", delay: 40 };
      opts.attempts = p.fails + 1;
      opts.backoff = p.backoff;
    }
    if (i % 13 === 5) {
      p.priority = 1 + (i % 4);
      opts.priority = p.priority;
    }
    plan.set(id, p);
    ids.push(id);
    await addRetrying(queue, i % 5 === 0 ? "slow" : "job", { n: i }, opts);
    // Add in bursts, so processing runs while jobs are still being added.
    if (i % 25 === 24) await sleep(20);
    if (CHAOS && !halfway && successes.size >= TOTAL / 2) {
      halfway = true;
      console.log(`HALFWAY ${successes.size} completed, ${i + 1} of ${rest} added`);
    }
  }
  const addedAt = Date.now();
  const progress = setInterval(() => {
    const t = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`progress ${t}s: ${successes.size} of ${ids.length + REPEAT_LIMIT} done, ${errors.length} client errors`);
  }, 5000);
  if (CHAOS && !halfway) {
    await until("half of the jobs", async () => successes.size >= TOTAL / 2);
    console.log(`HALFWAY ${successes.size} completed, all added`);
  }

  await until("every job to complete", async () => ids.every((id) => successes.has(id)));
  await until("the scheduled repetitions", async () =>
    [...successes.keys()].filter((id) => id.startsWith("repeat:")).length >= REPEAT_LIMIT);
  const repeats = [...successes.keys()].filter((id) => id.startsWith("repeat:"));
  const all = ids.concat(repeats);
  await until("a completed event for every job", async () => all.every((id) => events.has(id)));
  const elapsed = Date.now() - started;
  clearInterval(progress);
  // Let late duplicates (if any) arrive before counting them.
  await sleep(500);
  await w2.close();

  check(`${ids.length} jobs and ${repeats.length} repetitions completed`,
    ids.length === TOTAL && repeats.length === REPEAT_LIMIT, { ids: ids.length, repeats: repeats.length });
  const dupEvents = all.filter((id) => events.get(id) !== 1);
  check("QueueEvents: exactly one completed event per job", dupEvents.length === 0,
    dupEvents.slice(0, 5).map((id) => [id, events.get(id)]));
  const strayEvents = [...events.keys()].filter((id) => !all.includes(id));
  check("QueueEvents: no completed event for an unknown job", strayEvents.length === 0, strayEvents.slice(0, 5));

  const completedIds = [];
  for (let start = 0; ; start += 500) {
    const page = await queue.getCompleted(start, start + 499);
    completedIds.push(...page.map((j) => j.id));
    if (page.length < 500) break;
  }
  const completedSet = new Set(completedIds);
  check("completed set: every job once, nothing else",
    completedIds.length === all.length && all.every((id) => completedSet.has(id)),
    { completed: completedIds.length, expected: all.length });
  const counts = await queue.getJobCounts("completed", "failed", "active", "wait", "delayed", "prioritized");
  check("job counts: all completed, nothing failed, active or waiting",
    counts.completed === all.length && counts.failed === 0 && counts.active === 0 && counts.wait === 0 &&
      counts.delayed === 0 && counts.prioritized === 0, counts);

  let retries = 0;
  let reruns = 0;
  const badAttempts = [];
  const badDelay = [];
  const badBackoff = [];
  const badReturn = [];
  for (let k = 0; k < ids.length; k += 100) {
    const slice = ids.slice(k, k + 100);
    const jobs = await Promise.all(slice.map((id) => queue.getJob(id)));
    for (const [j, job] of jobs.entries()) {
      const id = slice[j];
      const p = plan.get(id);
      if (!job) {
        badReturn.push([id, "missing"]);
        continue;
      }
      if (job.attemptsMade !== p.fails + 1) badAttempts.push([id, job.attemptsMade, p.fails + 1]);
      if (!job.returnvalue || job.returnvalue.id !== id) badReturn.push([id, job.returnvalue]);
      retries += p.fails;
      const list = attempts.get(id) || [];
      const extra = list.length - (p.fails + 1);
      if (extra !== 0) reruns += Math.abs(extra);
      if (p.delay && list.length && list[0].start < job.timestamp + p.delay)
        badDelay.push([id, list[0].start - job.timestamp, p.delay]);
      // Each retry starts no earlier than the failed attempt's end + backoff.
      for (let a = 1; a < list.length; a++) {
        const prev = list[a - 1];
        if (prev.attemptsMade >= p.fails || list[a].attemptsMade !== prev.attemptsMade + 1) continue;
        const wait = backoffFor(p.backoff, prev.attemptsMade + 1);
        if (list[a].start < prev.end + wait) badBackoff.push([id, a, list[a].start - prev.end, wait]);
      }
    }
  }
  check("attemptsMade equals the configured attempts", badAttempts.length === 0, badAttempts.slice(0, 5));
  check("each job's return value is its last attempt's", badReturn.length === 0, badReturn.slice(0, 5));
  check("no delayed job started before timestamp + delay", badDelay.length === 0, badDelay.slice(0, 5));
  check("no retry started before the failed attempt's end + backoff", badBackoff.length === 0, badBackoff.slice(0, 5));
  const doubleRuns = all.filter((id) => (successes.get(id) || 0) > 1);
  if (CHAOS) {
    console.log(`at-least-once: ${doubleRuns.length} jobs ran to success more than once in the processor (allowed)`);
  } else {
    check("processor: each job run exactly its attempts (no rerun)", reruns === 0 && doubleRuns.length === 0,
      { reruns, doubleRuns: doubleRuns.slice(0, 5) });
  }
  console.log(`figures: jobs=${ids.length} repetitions=${repeats.length} retries=${retries} reruns=${reruns} ` +
    `double_runs=${doubleRuns.length} errors=${errors.length} all_done_ms=${elapsed} adding_ms=${addedAt - started}`);
  const distinct = new Map();
  for (const e of errors) {
    const key = e.replace(/\d+/g, "N");
    distinct.set(key, (distinct.get(key) || 0) + 1);
  }
  for (const [e, n] of distinct) console.log(`client error (${n}x): ${e}`);
  if (!CHAOS && errors.length) fail(`client errors without a fault: ${errors.length}`);

  await queue.obliterate({ force: true });
  await Promise.all([queue.close(), qe.close()]);
  console.log("all checks passed");
  process.exit(0);
}

setTimeout(() => fail("deadline passed"), DEADLINE - Date.now() + 5000).unref();
main().catch((e) => fail(`${e.stack || e}`));
