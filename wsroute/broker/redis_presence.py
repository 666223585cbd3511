"""Presence for the Redis backend: members in Redis hashes, and heartbeats that let the
live processes remove the members of a dead one.

Keys (``<prefix>`` is the backend's channel prefix, ``wsroute:`` by default):

* ``<prefix>presence:<topic>``, a hash: client id -> ``{"user": …, "info": …}`` (JSON).
* ``<prefix>presence-users:<topic>``, a hash: user -> how many of its connections are
  there (for `presence_stats` without reading the members).
* ``<prefix>presence-node:<node>``, a hash: client id -> topic, every member a process holds.
* ``<prefix>presence-nodes``, a sorted set: each process holding members, scored with the
  time (Redis ms) by which it must heartbeat again.

A process with members heartbeats every third of its ``presence_ttl``. Any process sweeps:
a node past its deadline is claimed by exactly one sweeper (``ZREM`` returns 1 once), which
removes its members and publishes their leaves. A member of a process killed without running
its leaves is gone within ``presence_ttl`` plus one heartbeat interval.
"""

from __future__ import annotations

from typing import Any

import orjson

from wsroute.presence import Member, member_from_json

_USER_DOWN = """
local function user_down(ukey, value)
  local user = cjson.decode(value)['user']
  if type(user) == 'string' and redis.call('HINCRBY', ukey, user, -1) <= 0 then
    redis.call('HDEL', ukey, user)
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# One batch of a process's changes on a topic, stored and announced in one step (so a
# watcher that reads the members and then the diffs sees each change once, in order).
# KEYS: presence, users, node hash, nodes. ARGV: topic, node, ttl ms, number of joins, then
# client id and member JSON per join, then the client id of each leave, then the channel
# and the envelope to PUBLISH (an empty channel: nothing to publish). Returns 1 when a join
# registered the node anew (Redis lost its members, or they were swept: the process must
# store the others again), else 0.
UPDATE_SCRIPT = _USER_DOWN + """
local joins = tonumber(ARGV[4])
local registered = 0
local i = 5
for _ = 1, joins do
  local cid, value = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', KEYS[1], cid)
  if old then user_down(KEYS[2], old) end
  redis.call('HSET', KEYS[1], cid, value)
  local user = cjson.decode(value)['user']
  if type(user) == 'string' then redis.call('HINCRBY', KEYS[2], user, 1) end
  redis.call('HSET', KEYS[3], cid, ARGV[1])
  i = i + 2
end
if joins > 0 then registered = redis.call('ZADD', KEYS[4], now_ms() + tonumber(ARGV[3]), ARGV[2]) end
while i < #ARGV - 1 do
  local cid = ARGV[i]
  local old = redis.call('HGET', KEYS[1], cid)
  if old then
    redis.call('HDEL', KEYS[1], cid)
    redis.call('HDEL', KEYS[3], cid)
    user_down(KEYS[2], old)
  end
  i = i + 1
end
if ARGV[#ARGV - 1] ~= '' then redis.call('PUBLISH', ARGV[#ARGV - 1], ARGV[#ARGV]) end
return registered
"""

# KEYS: nodes. ARGV: node, ttl ms. Returns 1 when the node was not registered (new, or
# swept while it was paused: its members must be added again).
HEARTBEAT_SCRIPT = _USER_DOWN + """
return redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
"""

# The sweep, run before every read so that a read lists no member of a process past its
# deadline (16 such processes per script; the heartbeat's sweep takes any more within a
# third of presence_ttl, inside the crash bound).
# Takes (nodes key, prefix); returns a flat list: topic, client id, member JSON, ...
_SWEEP = _USER_DOWN + """
local function sweep(nodes, prefix)
  local out = {}
  local dead = redis.call('ZRANGEBYSCORE', nodes, '-inf', now_ms(), 'LIMIT', 0, 16)
  for _, node in ipairs(dead) do
    if redis.call('ZREM', nodes, node) == 1 then
      local nkey = prefix .. 'presence-node:' .. node
      local entries = redis.call('HGETALL', nkey)
      for i = 1, #entries, 2 do
        local cid, topic = entries[i], entries[i + 1]
        local pkey = prefix .. 'presence:' .. topic
        local value = redis.call('HGET', pkey, cid)
        if value then
          redis.call('HDEL', pkey, cid)
          user_down(prefix .. 'presence-users:' .. topic, value)
          table.insert(out, topic)
          table.insert(out, cid)
          table.insert(out, value)
        end
      end
      redis.call('DEL', nkey)
    end
  end
  return out
end
"""

# KEYS: nodes. ARGV: prefix. Returns how many dead processes are left for another batch (a
# batch is 16, so that one script never holds Redis long), then what the sweep removed (see
# `parse_sweep`).
SWEEP_SCRIPT = _SWEEP + """
local out = sweep(KEYS[1], ARGV[1])
table.insert(out, 1, redis.call('ZCOUNT', KEYS[1], '-inf', now_ms()))
return out
"""

# KEYS: presence, nodes. ARGV: prefix, sweep. Returns what the sweep removed and the members as one
# JSON object, client id -> stored value: one bulk reply, which redis-py reads at once,
# instead of two replies per member, which it parses one by one in Python (10,000 members:
# ~90 ms that way). The sweep in the same script saves a round trip per read.
# ARGV[2] is "1" to sweep, "0" not to (a process that could not reach Redis lately waits
# before judging the others dead: they could not heartbeat either).
MEMBERS_SCRIPT = _SWEEP + """
local swept = {}
if ARGV[2] == '1' then swept = sweep(KEYS[2], ARGV[1]) end
local flat = redis.call('HGETALL', KEYS[1])
local parts = {}
for i = 1, #flat, 2 do
  parts[#parts + 1] = cjson.encode(flat[i]) .. ':' .. flat[i + 1]
end
return {swept, '{' .. table.concat(parts, ',') .. '}'}
"""

# KEYS: presence, users, nodes. ARGV: prefix, sweep ("1" or "0", as for MEMBERS_SCRIPT).
# Returns what the sweep removed, then how many members and how many distinct users the topic has.
STATS_SCRIPT = _SWEEP + """
local swept = {}
if ARGV[2] == '1' then swept = sweep(KEYS[3], ARGV[1]) end
return {swept, redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[2])}
"""


def topic_keys(prefix: bytes, topic: str) -> tuple[bytes, bytes]:
    """The members hash and the users hash of `topic`."""
    name = topic.encode()
    return prefix + b"presence:" + name, prefix + b"presence-users:" + name


def node_key(prefix: bytes, node: str) -> bytes:
    """The hash of every member `node` holds."""
    return prefix + b"presence-node:" + node.encode()


def nodes_key(prefix: bytes) -> bytes:
    """The sorted set of processes holding members, by heartbeat deadline."""
    return prefix + b"presence-nodes"


def encode_member(member: Member) -> str:
    """A member's stored value."""
    return orjson.dumps(member.as_json()).decode()


def parse_members(reply: str | bytes) -> list[Member]:
    """The members of a `MEMBERS_SCRIPT` reply's JSON."""
    members: dict[str, dict[str, Any]] = orjson.loads(reply)
    return [member_from_json(cid, value) for cid, value in members.items()]


def parse_sweep(reply: Any) -> dict[str, list[Member]]:
    """The members a sweep removed, by topic."""
    flat = list(reply)
    removed: dict[str, list[Member]] = {}
    for topic, cid, value in zip(flat[::3], flat[1::3], flat[2::3], strict=True):
        removed.setdefault(topic.decode(), []).append(member_from_json(cid.decode(), orjson.loads(value)))
    return removed
