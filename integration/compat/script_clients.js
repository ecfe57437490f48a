// Node clients whose every step is a Lua script, as applications use them,
// against two addresses of one data set: a dkv follower and the leader, or
// one real redis-server given twice.
//
// Usage: node script_clients.js redlock|definecommand LEADER FOLLOWER
// (addresses are host:port).
//
// redlock (5.0.0-beta.2 on ioredis; acquire, extend and release are Lua
// scripts sent as EVALSHA, then EVAL on NOSCRIPT): acquire, extend (the TTL
// seen from the other address), release; a second Redlock on the other
// address is refused while the lock is held (ExecutionError carrying
// ResourceLockedError votes) and gets it once released; extending an expired
// lock, and extending or releasing a lock another client holds, fail; many concurrent
// `using` sections from clients on both addresses around a GET + SET
// increment: never two inside at once, the counter exact.
//
// definecommand (ioredis `defineCommand`): a small script called on both
// addresses. What each call puts on the wire is recorded (the command name at
// Command#toWritable): EVAL the first time on a connection, EVALSHA after;
// after SCRIPT FLUSH (sent to the other address) EVALSHA gets NOSCRIPT and
// ioredis resends it as EVAL; also in a pipeline; SCRIPT EXISTS on both
// addresses follows the cache.
//
// Prints one line per check; exits non-zero on the first failed check. The
// whole run has a 60 s deadline.
const Redis = require("ioredis");
const Command = require("ioredis/built/Command").default;
const { default: Redlock, ExecutionError, ResourceLockedError } = require("redlock");

const [mode, leaderAddr, followerAddr] = process.argv.slice(2);
setTimeout(() => { console.log("FAIL deadline: still running after 60 s"); process.exit(1); }, 60_000).unref();

function check(name, cond, detail) {
  if (!cond) {
    console.log(`FAIL ${name} ${detail === undefined ? "" : JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

function client(addr) {
  const i = addr.lastIndexOf(":");
  return new Redis({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)), maxRetriesPerRequest: 3,
    retryStrategy: (times) => (times > 5 ? null : 100) });
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function rejects(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return e;
  }
}

async function redlockChecks() {
  const rf = client(followerAddr);
  const rl = client(leaderAddr);
  await rl.del("rl:res", "rl:counter", "rl:contended");
  // No retries: a refusal shows at once.
  const onFollower = new Redlock([rf], { retryCount: 0 });
  const onLeader = new Redlock([rl], { retryCount: 0 });

  const lock = await onFollower.acquire(["rl:res"], 2000);
  check("acquire through the follower", lock.value && (await rl.get("rl:res")) === lock.value);
  const pttl0 = await rl.pttl("rl:res");
  check("the lock's TTL is the requested 2 s", pttl0 > 0 && pttl0 <= 2000, pttl0);
  const refused = await rejects(onLeader.acquire(["rl:res"], 2000));
  check("a client on the leader is refused while it is held", refused instanceof ExecutionError, String(refused));
  const votes = refused.attempts.length ? await refused.attempts[0] : null;
  const against = votes ? [...votes.votesAgainst.values()] : [];
  check("the refusal is a ResourceLockedError vote", against.length === 1 && against[0] instanceof ResourceLockedError,
    against.map(String));
  check("the holder's value is untouched", (await rl.get("rl:res")) === lock.value);

  const extended = await lock.extend(20_000);
  const pttl1 = await rl.pttl("rl:res");
  check("extend set the TTL to 20 s (seen on the leader)", pttl1 > 2000 && pttl1 <= 20_000, pttl1);
  check("extend keeps the value and moves the expiration",
    extended.value === lock.value && extended.expiration > lock.expiration);
  await extended.release();
  check("release through the follower", (await rl.exists("rl:res")) === 0);

  const second = await onLeader.acquire(["rl:res"], 20_000);
  check("the client on the leader gets the released lock", (await rf.get("rl:res")) === second.value);
  const notMine = await rejects(onFollower.release(lock));
  check("releasing a lock another client now holds fails", notMine instanceof ExecutionError, String(notMine));
  const stale = await rejects(extended.extend(5000));
  check("extending a lock another client now holds fails (the extend script answers 0)",
    stale instanceof ExecutionError, String(stale));
  check("and both leave the holder's lock", (await rf.get("rl:res")) === second.value);
  await second.release();
  check("release through the leader", (await rf.exists("rl:res")) === 0);

  const short = await onFollower.acquire(["rl:res"], 200);
  for (let i = 0; i < 250 && (await rl.exists("rl:res")) === 1; i++) await sleep(20);
  check("the short lock expired", (await rl.exists("rl:res")) === 0);
  const late = await rejects(short.extend(5000));
  check("extending an expired lock fails (redlock's own expiration check)", late instanceof ExecutionError,
    String(late));

  // Contention: sections from clients on both addresses, with retries.
  const workers = 6, rounds = 10;
  const retrying = [rf, rl].map((c) => new Redlock([c], { retryCount: 500, retryDelay: 10, retryJitter: 10 }));
  let inside = 0, maxInside = 0;
  const run = async (w) => {
    const r = w % 2 === 0 ? rf : rl;
    for (let i = 0; i < rounds; i++) {
      await retrying[w % 2].using(["rl:contended"], 5000, async (signal) => {
        inside += 1;
        maxInside = Math.max(maxInside, inside);
        const v = Number((await r.get("rl:counter")) || 0);
        await sleep(2);
        await r.set("rl:counter", v + 1);
        if (signal.aborted) throw signal.error;
        inside -= 1;
      });
    }
  };
  await Promise.all([...Array(workers).keys()].map(run));
  check("never two sections inside the lock at once", maxInside === 1, maxInside);
  const total = Number(await rl.get("rl:counter"));
  check(`the counter is exact (${workers} workers x ${rounds} rounds)`, total === workers * rounds, total);
  check("the contended lock is free at the end", (await rf.exists("rl:contended")) === 0);
  rf.disconnect();
  rl.disconnect();
  console.log("redlock: all checks passed");
}

// The names a connection writes, per client, in order.
const wire = new Map();
const toWritable = Command.prototype.toWritable;
Command.prototype.toWritable = function (socket) {
  const tag = this.__tag;
  if (tag && wire.has(tag)) wire.get(tag).push(this.name);
  return toWritable.call(this, socket);
};

const SCRIPT = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local cap = tonumber(ARGV[2])
if v > cap then
  redis.call('SET', KEYS[1], cap)
  return {cap, 1}
end
return {v, 0}
`;

async function defineCommandChecks() {
  const rf = client(followerAddr);
  const rl = client(leaderAddr);
  await rl.del("dc:k");
  await rl.script("FLUSH");
  for (const [tag, r] of [["follower", rf], ["leader", rl]]) {
    r.defineCommand("boundedIncr", { numberOfKeys: 1, lua: SCRIPT });
    wire.set(tag, []);
    // Tag only this client's script calls (sendCommand sees every command).
    const send = r.sendCommand.bind(r);
    r.sendCommand = (cmd, stream) => {
      if (/^eval/.test(cmd.name)) cmd.__tag = tag;
      return send(cmd, stream);
    };
  }
  const sha = require("crypto").createHash("sha1").update(SCRIPT).digest("hex");
  const exists = async (r) => (await r.script("EXISTS", sha))[0];
  const calls = async (tag, r, ...args) => {
    wire.set(tag, []);
    const out = await r.boundedIncr("dc:k", ...args);
    return { out, sent: wire.get(tag).join(",") };
  };

  check("SCRIPT FLUSH emptied the cache (seen on both)", (await exists(rl)) === 0 && (await exists(rf)) === 0);
  let c = await calls("follower", rf, 5, 12);
  check("first call on the follower's connection sends EVAL", c.sent === "eval", c.sent);
  check("and answers [5, 0]", JSON.stringify(c.out) === "[5,0]", c.out);
  check("EVAL cached the script (seen on the leader)", (await exists(rl)) === 1);
  c = await calls("follower", rf, 5, 12);
  check("the second call sends EVALSHA", c.sent === "evalsha" && JSON.stringify(c.out) === "[10,0]", c);
  c = await calls("leader", rl, 5, 12);
  check("first call on the leader's connection sends EVAL and is capped",
    c.sent === "eval" && JSON.stringify(c.out) === "[12,1]", c);
  c = await calls("leader", rl, -4, 12);
  check("then EVALSHA on the leader", c.sent === "evalsha" && JSON.stringify(c.out) === "[8,0]", c);

  check("SCRIPT FLUSH through the leader", (await rl.script("FLUSH")) === "OK");
  check("the follower's cache is empty too", (await exists(rf)) === 0);
  c = await calls("follower", rf, 1, 100);
  check("after SCRIPT FLUSH: EVALSHA, NOSCRIPT, then EVAL (follower)",
    c.sent === "evalsha,eval" && JSON.stringify(c.out) === "[9,0]", c);
  check("the EVAL fallback cached the script again (seen on the leader)", (await exists(rl)) === 1);
  c = await calls("leader", rl, 1, 100);
  check("the leader's connection sends EVALSHA and finds it", c.sent === "evalsha" && JSON.stringify(c.out) === "[10,0]", c);

  await rf.script("FLUSH");
  wire.set("leader", []);
  // Only script calls: a NOSCRIPT retry is sent after the rest of the pipeline.
  const piped = await rl.pipeline().boundedIncr("dc:k", 1, 100).boundedIncr("dc:k", 1, 100).exec();
  const errors = piped.filter(([e]) => e).map(([e]) => String(e));
  check("a pipeline after SCRIPT FLUSH (through the follower) succeeds", errors.length === 0, errors);
  check("with the script results in order",
    JSON.stringify(piped.map(([, v]) => v)) === JSON.stringify([[11, 0], [12, 0]]), piped);
  check("the pipeline's calls fell back to EVAL",
    wire.get("leader").filter((n) => n === "eval").length >= 1, wire.get("leader"));
  check("the value is the same on both addresses", (await rf.get("dc:k")) === "12" && (await rl.get("dc:k")) === "12");
  rf.disconnect();
  rl.disconnect();
  console.log("ioredis defineCommand: all checks passed");
}

const modes = { redlock: redlockChecks, definecommand: defineCommandChecks };
if (!modes[mode]) {
  console.log(`FAIL unknown mode ${mode}`);
  process.exit(1);
}
modes[mode]().catch((e) => { console.log(`FAIL ${e.stack || e}`); process.exit(1); });
