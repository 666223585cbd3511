"""History for the Redis backend: each topic's stream in Redis, written and read by Lua.

Keys, per topic (``<prefix>`` is the backend's channel prefix, ``wsroute:`` by default):

* ``<prefix>position:<topic>``, a hash: ``e`` the epoch, ``o`` the offset of the last
  publication, ``r`` the run id of the Redis server that wrote it. Expires `POSITION_TTL`
  after the last publication.
* ``<prefix>stream:<topic>``, a stream of the kept publications: entry id ``<offset>-0``,
  fields ``t`` (Redis time in ms) and ``d`` (the envelope's flags byte and the payload).
  Trimmed to the newest ``history`` entries on each publication and, with a ``history_ttl``,
  of entries older than that on each publication and read; it expires ``history_ttl`` after
  the last publication.

A publication is one script: it assigns the offset, appends to the stream and PUBLISHes the
envelope with the position in it, atomically, so the order of offsets is the order in which
every process receives them. When the position hash is missing (a new topic, an expired
one, a flushed or restarted Redis) the script starts a new epoch, chosen by the caller, and
deletes any stream left under the old one. So it does when the hash was written by another
run of Redis (``INFO server``'s ``run_id``, which the caller passes): a Redis restarted from
a snapshot, or a replica that took over, keeps a position that may be behind offsets clients
already received, and reusing them would lose publications as "already sent".
"""

from __future__ import annotations

import secrets
from typing import Any

from wsroute.history import POSITION_TTL, HistoryPolicy, Publication, StreamPosition, StreamRead

_COMMON = """
local position, stream = KEYS[1], KEYS[2]
-- `run`: this Redis server's run id ('' when the caller could not read it).
local function epoch_of(candidate, keep_ms, run)
  local kept = redis.call('HMGET', position, 'e', 'r')
  local epoch = kept[1]
  if epoch and (run == '' or kept[2] == run) then return epoch end
  if epoch and not kept[2] then
    -- Written before positions kept their run: adopted, not a new epoch.
    redis.call('HSET', position, 'r', run)
    return epoch
  end
  epoch = candidate
  redis.call('DEL', stream)
  redis.call('HSET', position, 'e', epoch, 'o', 0, 'r', run)
  redis.call('PEXPIRE', position, keep_ms)
  return epoch
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Remove the entries older than ttl_ms (0: none), oldest first; at most `size` of them exist.
local function expire(ttl_ms, now)
  if ttl_ms <= 0 then return end
  local cutoff = now - ttl_ms
  -- The common case, nothing expired: one entry read, not a batch.
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #first == 0 or tonumber(first[1][2][2]) >= cutoff then return end
  while true do
    local batch = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
    local last = nil
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][2]) >= cutoff then break end
      last = entry[1]
    end
    if not last then return end
    local offset = tonumber(string.match(last, '^(%d+)'))
    redis.call('XTRIM', stream, 'MINID', (offset + 1) .. '-0')
    if #batch < 64 then return end
  end
end
"""

# KEYS: position, stream. ARGV: channel, envelope head, flags byte, payload, size, ttl ms,
# position ttl ms, epoch candidate, run id. Returns {epoch, offset}.
PUBLISH_SCRIPT = _COMMON + """
local size, ttl_ms, keep_ms = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local epoch = epoch_of(ARGV[8], keep_ms, ARGV[9])
local offset = redis.call('HINCRBY', position, 'o', 1)
local now = now_ms()
redis.call('XADD', stream, 'MAXLEN', size, string.format('%d-0', offset), 't', now, 'd', ARGV[3] .. ARGV[4])
expire(ttl_ms, now)
redis.call('PEXPIRE', stream, ttl_ms > 0 and ttl_ms or keep_ms)
redis.call('PEXPIRE', position, keep_ms)
local at = string.format('%s:%d', epoch, offset)
redis.call('PUBLISH', ARGV[1], ARGV[2] .. string.char(#at) .. at .. ARGV[4])
return {epoch, offset}
"""

# KEYS: position, stream. ARGV: the lowest entry id to read ('-': from the oldest), limit
# (-1: none), reverse (0/1), ttl ms, position ttl ms, epoch candidate, run id. Returns
# {epoch, offset, oldest, offset, data, offset, data…}.
READ_SCRIPT = _COMMON + """
local low, limit, reverse = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local epoch = epoch_of(ARGV[6], tonumber(ARGV[5]), ARGV[7])
expire(tonumber(ARGV[4]), now_ms())
local offset = tonumber(redis.call('HGET', position, 'o'))
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
local oldest = offset + 1
if #first > 0 then oldest = tonumber(string.match(first[1][1], '^(%d+)')) end
local entries = {}
if limit ~= 0 then
  if reverse then
    if limit > 0 then entries = redis.call('XREVRANGE', stream, '+', low, 'COUNT', limit)
    else entries = redis.call('XREVRANGE', stream, '+', low) end
  else
    if limit > 0 then entries = redis.call('XRANGE', stream, low, '+', 'COUNT', limit)
    else entries = redis.call('XRANGE', stream, low, '+') end
  end
end
-- Flat (offset, data, offset, data, ...): a reply of two levels, not four, for the client to parse.
local out = {epoch, offset, oldest}
for _, entry in ipairs(entries) do
  table.insert(out, tonumber(string.match(entry[1], '^(%d+)')))
  table.insert(out, entry[2][4])
end
return out
"""

_POSITION_TTL_MS = int(POSITION_TTL * 1000)


def keys(prefix: bytes, topic: str) -> tuple[bytes, bytes]:
    """The position hash and stream keys of `topic`."""
    name = topic.encode()
    return prefix + b"position:" + name, prefix + b"stream:" + name


def _ttl_ms(policy: HistoryPolicy) -> int:
    return 0 if policy.ttl is None else max(1, int(policy.ttl * 1000))


def publish_args(
    prefix: bytes,
    topic: str,
    channel: bytes,
    head: bytes,
    flags: bytes,
    payload: bytes,
    policy: HistoryPolicy,
    run: str = "",
) -> tuple[bytes | str | int, ...]:
    """The arguments after the script (``EVALSHA sha 2 …``) of one publication; `run` is the
    Redis server's run id, '' when unknown."""
    position, stream = keys(prefix, topic)
    return (
        2, position, stream,
        channel, head, flags, payload, policy.size, _ttl_ms(policy), _POSITION_TTL_MS, new_epoch(), run,
    )  # fmt: skip


def read_args(
    prefix: bytes,
    topic: str,
    policy: HistoryPolicy,
    after: int | None,
    limit: int | None,
    reverse: bool,
    run: str = "",
) -> tuple[bytes | str | int, ...]:
    """The arguments after the script of one read (see `BrokerBackend.read_history`)."""
    position, stream = keys(prefix, topic)
    # The id built here, not in Lua: Lua 5.1 writes a number of 1e14 or more as "1e+14".
    low = "-" if after is None else f"{after + 1}-0"
    return (
        2, position, stream,
        low, -1 if limit is None else limit, int(reverse),
        _ttl_ms(policy), _POSITION_TTL_MS, new_epoch(), run,
    )  # fmt: skip


def new_epoch() -> str:
    """A fresh epoch: 8 characters of ``A-Za-z0-9_-`` (valid in a ``since`` option)."""
    return secrets.token_urlsafe(6)


def parse_position(reply: Any) -> StreamPosition:
    """The ``{epoch, offset}`` reply of the publish script."""
    epoch, offset = reply
    return StreamPosition(epoch.decode(), int(offset))


def parse_read(reply: Any) -> StreamRead:
    """The ``{epoch, offset, oldest, offset, data, …}`` reply of the read script."""
    epoch = reply[0].decode()
    publications = []
    for i in range(3, len(reply), 2):
        stored = reply[i + 1]
        data: str | bytes = stored[1:] if stored[0] & 0x01 else stored[1:].decode()
        publications.append(Publication(int(reply[i]), epoch, data))
    return StreamRead(StreamPosition(epoch, int(reply[1])), int(reply[2]), publications)
