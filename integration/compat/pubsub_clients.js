// ioredis subscriber mode against dkv, subscriber and publisher on different
// nodes: subscribe/psubscribe with their events, messageBuffer, the
// subscriber-mode refusal, unsubscribe, and PUBSUB NUMSUB through the other
// node. Usage: node pubsub_clients.js SUB_HOST:PORT PUB_HOST:PORT
// Exits non-zero on the first failed check; bounded by its own deadline.
const Redis = require("ioredis");
const { fail, check } = require("./checks");

const WAIT_MS = 10000;
setTimeout(() => fail("still running after 60 s"), 60000).unref();

function connect(addr) {
  const [host, port] = addr.split(":");
  return new Redis({ host, port: Number(port), maxRetriesPerRequest: 3,
    retryStrategy: (times) => (times > 3 ? null : 100) });
}

// Resolves once `pred(list)` holds, bounded.
function until(list, pred, what) {
  return new Promise((resolve) => {
    const end = Date.now() + WAIT_MS;
    const poll = () => {
      if (pred(list)) return resolve();
      if (Date.now() > end) fail(`${what}: ${JSON.stringify(list.slice(-5))} (${list.length})`);
      setTimeout(poll, 10);
    };
    poll();
  });
}

async function main() {
  const [subAddr, pubAddr] = process.argv.slice(2);
  const sub = connect(subAddr);
  const pub = connect(pubAddr);
  const got = [];
  sub.on("message", (channel, message) => got.push(["message", channel, message]));
  sub.on("pmessage", (pattern, channel, message) => got.push(["pmessage", pattern, channel, message]));
  sub.on("messageBuffer", (channel, message) => {
    if (!Buffer.isBuffer(message)) fail("messageBuffer without a Buffer");
  });

  const n = await sub.subscribe("news", "sport");
  check("subscribe resolves with the count", n === 2, n);
  check("psubscribe resolves with the count", (await sub.psubscribe("ev.*")) === 3);
  // RESP2 refuses other commands in subscriber mode (ioredis itself, or
  // the server's error); over RESP3 they work, as on Redis.
  let answer;
  try {
    answer = await sub.get("k");
  } catch (e) {
    answer = e.message;
  }
  check("GET in subscriber mode: refused or answered", answer === null || /subscriber mode|only \(P\|S\)SUBSCRIBE/.test(answer), answer);

  const numsub = await pub.pubsub("NUMSUB", "news", "nobody");
  check("NUMSUB through the other node", JSON.stringify(numsub) === JSON.stringify(["news", 1, "nobody", 0]), numsub);
  check("PUBLISH counts the subscriber", (await pub.publish("news", "hello")) === 1);
  check("PUBLISH counts the pattern", (await pub.publish("ev.login", "u1")) === 1);
  await until(got, (l) => l.length >= 2, "first two messages");
  check("message event", JSON.stringify(got[0]) === JSON.stringify(["message", "news", "hello"]), got[0]);
  check("pmessage event", JSON.stringify(got[1]) === JSON.stringify(["pmessage", "ev.*", "ev.login", "u1"]), got[1]);

  // 300 messages from a pipeline, over two channels and a pattern.
  got.length = 0;
  const p = pub.pipeline();
  for (let i = 0; i < 300; i++) p.publish(["news", "sport", "ev.x"][i % 3], String(i));
  const counts = await p.exec();
  check("pipelined PUBLISH counts", counts.every(([err, c]) => err === null && c === 1), counts.slice(0, 3));
  await until(got, (l) => l.length >= 300, "300 messages");
  const order = got.map((m) => Number(m[m.length - 1]));
  check("300 messages once each, in publication order", JSON.stringify(order) === JSON.stringify([...Array(300).keys()]));

  check("unsubscribe resolves with the count", (await sub.unsubscribe("news")) === 2);
  check("nobody counted after UNSUBSCRIBE", (await pub.publish("news", "gone")) === 0);
  check("unsubscribe of the last channel", (await sub.unsubscribe("sport")) === 1);
  check("punsubscribe of the last pattern", (await sub.punsubscribe("ev.*")) === 0);
  check("normal commands after leaving subscriber mode", (await sub.ping()) === "PONG");
  sub.disconnect();
  pub.disconnect();
  console.log("all checks passed");
}

main().catch((e) => fail(e.stack));
