// ioredis against dkv: connect (with its INFO ready check), pipeline, multi,
// expiry, scanStream. Usage: node ioredis_compat.js HOST PORT
const Redis = require("ioredis");
const [host, port] = [process.argv[2], Number(process.argv[3])];

function check(name, cond, detail) {
  if (!cond) {
    console.log(`FAIL ${name} ${detail === undefined ? "" : JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

async function main() {
  const r = new Redis({ host, port, db: 2, enableReadyCheck: true, maxRetriesPerRequest: 3,
    retryStrategy: (times) => (times > 3 ? null : 100) });
  await new Promise((resolve, reject) => { r.once("ready", resolve); r.once("end", () => reject(new Error("connection ended"))); });
  check("ready (INFO ready check passed)", r.status === "ready");
  await r.flushdb();
  check("set/get", (await r.set("a", "1")) === "OK" && (await r.get("a")) === "1");
  const p = r.pipeline();
  for (let i = 0; i < 100; i++) p.set(`k${i}`, i);
  p.incr("k0");
  const out = await p.exec();
  check("pipeline", out.length === 101 && out[100][1] === 1, out.slice(98));
  const tx = await r.multi().set("t", "x").get("t").hset("h", "f", "1", "g", "2").exec();
  check("multi/exec", JSON.stringify(tx) === JSON.stringify([[null, "OK"], [null, "x"], [null, 2]]), tx);
  await r.set("e", "v", "EX", 100);
  const ttl = await r.ttl("e");
  check("ttl", ttl >= 99 && ttl <= 100, ttl);
  await r.set("short", "v", "PX", 200);
  await new Promise((res) => setTimeout(res, 400));
  check("expired", (await r.get("short")) === null);
  const keys = new Set();
  await new Promise((resolve, reject) => {
    const s = r.scanStream({ match: "k*", count: 7 });
    s.on("data", (batch) => batch.forEach((k) => keys.add(k)));
    s.on("end", resolve);
    s.on("error", reject);
  });
  check("scanStream", keys.size === 100, keys.size);
  const h = await r.hgetall("h");
  check("hgetall", h.f === "1" && h.g === "2", h);
  try {
    await r.hget("a", "f");
    check("wrongtype", false);
  } catch (e) {
    check("wrongtype", String(e.message).startsWith("WRONGTYPE"), e.message);
  }
  r.disconnect();
  console.log("ioredis compat: all checks passed");
}

main().catch((e) => { console.log(`FAIL ${e.stack || e}`); process.exit(1); });
