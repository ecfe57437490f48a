"""redis-py's client-side cache (RESP3, cache_config) against two dkv nodes.

Usage: tracking_cache.py <cached-node-port> <other-node-port>

A client with redis-py's cache on one node caches GETs; writes go through
another node; after a linearizable round trip on the cached client's own
connection (DBSIZE waits for the write to be applied on its node, and the
node sends the invalidation before the reply), the cached key is gone and
the next GET returns the new value. FLUSHALL empties the whole cache.

redis-py enables its cache only for servers that say they are Redis >= 7.4
in HELLO; dkv says `server: dkv`. That gate alone is bypassed here (the
handshake check in CacheProxyConnection.connect); everything the cache does
-- CLIENT TRACKING ON, the invalidate push handler, the cache itself -- is
redis-py's own.
"""

import sys

import redis
from redis.cache import CacheConfig
from redis.connection import CacheProxyConnection


def connect_without_version_gate(self):
    self._conn.connect()


CacheProxyConnection.connect = connect_without_version_gate


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)
    print("ok", what)


def main():
    cached_port, other_port = int(sys.argv[1]), int(sys.argv[2])
    cached = redis.Redis(
        host="127.0.0.1",
        port=cached_port,
        protocol=3,
        cache_config=CacheConfig(),
        socket_timeout=10,
    )
    other = redis.Redis(host="127.0.0.1", port=other_port, socket_timeout=10)
    cache = cached.get_cache()
    check(cache is not None, "redis-py built a client-side cache")

    other.set("cc:k", "v1")
    other.set("cc:j", "j1")
    check(cached.get("cc:k") == b"v1", "first GET reads the server")
    check(cached.get("cc:j") == b"j1", "second key read")
    check(cache.size == 2, "both GETs cached (size %d)" % cache.size)
    check(cached.get("cc:k") == b"v1", "cached GET")

    for i in range(2, 12):
        value = "v%d" % i
        other.set("cc:k", value)
        # A linearizable read on the cached client's connection: the node
        # has applied the write, and its invalidation precedes this reply.
        cached.dbsize()
        check(cached.get("cc:k") == value.encode(), "GET after write %d through the other node" % i)

    check(cached.get("cc:j") == b"j1", "the untouched key is still served")
    other.flushall()
    cached.dbsize()
    check(cache.size == 0, "FLUSHALL emptied the cache (size %d)" % cache.size)
    check(cached.get("cc:k") is None, "GET after FLUSHALL reads the server")
    print("all checks passed")


main()
