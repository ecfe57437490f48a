// What the node client scripts share: a check that prints `ok NAME` or
// `FAIL NAME DETAIL` and exits 1, and `host:port` split for a client's options.
"use strict";

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}

function check(name, cond, detail) {
  if (!cond) fail(`${name} ${detail === undefined ? "" : JSON.stringify(detail)}`);
  console.log(`ok ${name}`);
}

// "127.0.0.1:7001" -> { host: "127.0.0.1", port: 7001 }
function hostPort(addr) {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

module.exports = { fail, check, hostPort };
