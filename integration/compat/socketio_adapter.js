// The Socket.IO Redis adapter (@socket.io/redis-adapter) on dkv: two
// Socket.IO servers, each attached (ioredis pub and sub connections) to a
// different dkv node, a client on each. Checks: a room broadcast from one
// server reaches the clients of both; fetchSockets() from either server
// lists the sockets of both (a request/response over pub/sub); the servers
// count each other (PUBSUB NUMSUB); serverSideEmit with an acknowledgement
// crosses servers; a socket leaving a room is no longer reached.
// Usage: node socketio_adapter.js HOST:PORT HOST:PORT
// Exits non-zero on the first failed check; bounded by its own deadline.
const http = require("http");
const Redis = require("ioredis");
const { fail, check } = require("./checks");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { io: connectClient } = require("socket.io-client");

const WAIT_MS = 10000;
setTimeout(() => fail("still running after 60 s"), 60000).unref();

function redis(addr) {
  const [host, port] = addr.split(":");
  return new Redis({ host, port: Number(port), maxRetriesPerRequest: 3,
    retryStrategy: (times) => (times > 3 ? null : 100) });
}

async function startServer(addr, name) {
  const pub = redis(addr);
  const sub = pub.duplicate();
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(pub, sub, { requestsTimeout: WAIT_MS }) });
  io.on("connection", (socket) => {
    socket.data.server = name;
    socket.join("room1");
    socket.on("leave", (room, ack) => { socket.leave(room); ack(); });
  });
  io.on("hello", (from, ack) => ack(`${name} greets ${from}`));
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  return { io, pub, sub, httpServer, port: httpServer.address().port };
}

function connect(server) {
  return new Promise((resolve) => {
    const socket = connectClient(`http://127.0.0.1:${server.port}`, { transports: ["websocket"], reconnection: false });
    const timer = setTimeout(() => fail("a client did not connect"), WAIT_MS);
    socket.on("connect", () => { clearTimeout(timer); resolve(socket); });
  });
}

function nextEvent(socket, event) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(`no '${event}' within ${WAIT_MS} ms`), WAIT_MS);
    socket.once(event, (...args) => { clearTimeout(timer); resolve(args); });
  });
}

// Both adapters' subscriptions are counted (each server sees 2 servers).
async function bothCounted(servers) {
  const end = Date.now() + WAIT_MS;
  for (;;) {
    const counts = await Promise.all(servers.map((s) => s.io.of("/").adapter.serverCount()));
    if (counts.every((c) => c === 2)) return counts;
    if (Date.now() > end) fail(`serverCount ${JSON.stringify(counts)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const [addrA, addrB] = process.argv.slice(2);
  const a = await startServer(addrA, "A");
  const b = await startServer(addrB, "B");
  const counts = await bothCounted([a, b]);
  check("each server counts two servers (PUBSUB NUMSUB)", true, counts);
  const ca = await connect(a);
  const cb = await connect(b);

  // A room broadcast from A reaches the clients of A and of B.
  const both = Promise.all([nextEvent(ca, "news"), nextEvent(cb, "news")]);
  a.io.to("room1").emit("news", "from A", 1);
  const [ga, gb] = await both;
  check("A's room broadcast reaches A's client", JSON.stringify(ga) === JSON.stringify(["from A", 1]), ga);
  check("A's room broadcast reaches B's client", JSON.stringify(gb) === JSON.stringify(["from A", 1]), gb);

  // fetchSockets across servers: request/response over pub/sub.
  for (const [name, server] of [["A", a], ["B", b]]) {
    const sockets = await server.io.in("room1").fetchSockets();
    const where = sockets.map((s) => s.data.server).sort();
    check(`fetchSockets from ${name} lists both servers' sockets`, JSON.stringify(where) === '["A","B"]', where);
  }

  // serverSideEmit with an acknowledgement crosses servers.
  const replies = await a.io.serverSideEmitWithAck("hello", "A");
  check("serverSideEmit reaches B and B acknowledges", JSON.stringify(replies) === '["B greets A"]', replies);

  // B's client leaves the room: a broadcast from B reaches only A's client.
  await cb.timeout(WAIT_MS).emitWithAck("leave", "room1");
  let strayB = false;
  cb.on("later", () => { strayB = true; });
  const onlyA = nextEvent(ca, "later");
  b.io.to("room1").emit("later", "from B");
  check("B's broadcast reaches A's client", JSON.stringify(await onlyA) === '["from B"]');
  const remaining = await a.io.in("room1").fetchSockets();
  check("the socket that left is no longer in the room", remaining.length === 1 && remaining[0].data.server === "A",
    remaining.map((s) => s.data.server));
  check("B's client, out of the room, got nothing", !strayB);

  ca.close();
  cb.close();
  for (const s of [a, b]) {
    s.io.close();
    s.pub.disconnect();
    s.sub.disconnect();
  }
  console.log("all checks passed");
  process.exit(0);
}

main().catch((e) => fail(e.stack));
