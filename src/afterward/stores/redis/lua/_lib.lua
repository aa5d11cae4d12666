-- Helpers shared by every script: afterward.stores.redis.scripts prepends this file to each
-- lua/<name>.lua before loading it, so every script is one self-contained chunk.
--
-- ARGV[1] is always the key prefix. Times arrive as strings (Python's repr of a float)
-- and are stored exactly as given: Lua's tostring keeps only 14 digits, so a time is
-- never turned into a Lua number and back, only compared through tonumber().
-- The job hash is the truth; every index below is kept in step with it by save().

local PFX = ARGV[1] .. ':'
local WAKE_CAP = 32

local TERMINAL = {succeeded = true, failed = true, cancelled = true}
local DUE = {queued = true, scheduled = true}
local UNSTARTED = {queued = true, scheduled = true, waiting = true}

local function jkey(id)
  return PFX .. 'job:' .. id
end

local function akey(id)
  return PFX .. 'attempts:' .. id
end

-- A job's hash as a table of strings, or nil when there is no such job.
local function load(id)
  local flat = redis.call('HGETALL', jkey(id))
  if #flat == 0 then
    return nil
  end
  local j = {}
  for i = 1, #flat, 2 do
    j[flat[i]] = flat[i + 1]
  end
  return j
end

-- Byte-wise a < b (Lua's own < follows the server's locale).
local function bytes_lt(a, b)
  for p = 1, math.min(#a, #b) do
    local x, y = a:byte(p), b:byte(p)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

local function count_field(field, delta)
  if redis.call('HINCRBY', PFX .. 'counts', field, delta) <= 0 then
    redis.call('HDEL', PFX .. 'counts', field)
  end
end

local function count(j, delta)
  count_field(j.state .. ':' .. j.queue, delta)
end

local function lane(j)
  return j.priority .. ':' .. j.queue
end

-- Take a job out of every index its current fields put it in.
local function unindex(j)
  count(j, -1)
  if DUE[j.state] then
    local name = lane(j)
    local key = PFX .. 'ready:' .. name
    redis.call('ZREM', key, j.id)
    if redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', PFX .. 'lanes', name)
    end
  end
  if j.state == 'running' then
    redis.call('ZREM', PFX .. 'running', j.id)
  elseif j.lease_owner then
    redis.call('ZREM', PFX .. 'reserved', j.id)
  end
  if TERMINAL[j.state] then
    redis.call('ZREM', PFX .. 'finished:' .. j.state, j.id)
  elseif j.unique_key and redis.call('HGET', PFX .. 'unique', j.unique_key) == j.id then
    redis.call('HDEL', PFX .. 'unique', j.unique_key)
  end
end

-- The index entries a job's current fields call for, each handed to `put` as
-- put('count', field), put('ZADD', key, score, member) or put('HSET', key, field, value).
local function index_entries(j, put)
  put('count', j.state .. ':' .. j.queue)
  if DUE[j.state] then
    local name = lane(j)
    put('ZADD', PFX .. 'ready:' .. name, j.run_at, j.id)
    put('ZADD', PFX .. 'lanes', j.priority, name)
  end
  if j.state == 'running' then
    put('ZADD', PFX .. 'running', j.lease_expires_at, j.id)
  elseif j.lease_owner then
    put('ZADD', PFX .. 'reserved', j.lease_expires_at, j.id)
  end
  if TERMINAL[j.state] then
    put('ZADD', PFX .. 'finished:' .. j.state, j.finished_at, j.id)
  elseif j.unique_key then
    put('HSET', PFX .. 'unique', j.unique_key, j.id)
  end
end

local function put_now(command, key, a, b)
  if command == 'count' then
    count_field(key, 1)
  else
    redis.call(command, key, a, b)
  end
end

-- Put a job into every index its current fields call for.
local function index(j)
  index_entries(j, put_now)
end

-- Run `command key` over a flat list of pairs, in chunks (unpack has a limit).
local CHUNK = 2000
local function call_pairs(command, key, flat)
  for at = 1, #flat, CHUNK do
    redis.call(command, key, unpack(flat, at, math.min(at + CHUNK - 1, #flat)))
  end
end

-- index() for many jobs: their entries gathered, one command per key and chunk, so a
-- bulk enqueue pays a few commands per batch instead of several per job.
local function index_all(jobs)
  local counts, lists, commands, seen = {}, {}, {}, {}
  local function put(command, key, a, b)
    if command == 'count' then
      counts[key] = (counts[key] or 0) + 1
      return
    end
    local list = lists[key]
    if not list then
      list, seen[key] = {}, {}
      lists[key], commands[key] = list, command
    end
    if not seen[key][b] then  -- a lane is added once, not once per job
      seen[key][b] = true
      list[#list + 1] = a
      list[#list + 1] = b
    end
  end
  for _, j in ipairs(jobs) do
    index_entries(j, put)
  end
  for field, n in pairs(counts) do
    count_field(field, n)
  end
  for key, list in pairs(lists) do
    call_pairs(commands[key], key, list)
  end
end

-- Apply `changes` (field -> value, or false to clear the field) to a loaded job.
local function save(j, changes)
  unindex(j)
  local set, del = {}, {}
  for field, value in pairs(changes) do
    if value == false then
      del[#del + 1] = field
      j[field] = nil
    else
      set[#set + 1] = field
      set[#set + 1] = value
      j[field] = value
    end
  end
  if #set > 0 then
    redis.call('HSET', jkey(j.id), unpack(set))
  end
  if #del > 0 then
    redis.call('HDEL', jkey(j.id), unpack(del))
  end
  index(j)
end

-- `changes` plus clearing the lease (or reservation).
local function unleased(changes)
  changes.lease_owner = false
  changes.lease_expires_at = false
  return changes
end

-- The unfinished job holding a unique key, or false.
local function unique_holder(key)
  local id = redis.call('HGET', PFX .. 'unique', key)
  if not id then
    return false
  end
  local state = redis.call('HGET', jkey(id), 'state')
  if state and not TERMINAL[state] then
    return id
  end
  return false
end

-- Whether `worker` holds the running job's lease for `attempt`. mode 'live': the lease
-- has not expired; 'expired': it has; anything else: either way.
local function held(j, worker, attempt, now, mode)
  if not j or j.state ~= 'running' or j.lease_owner ~= worker then
    return false
  end
  if tonumber(j.attempts) ~= tonumber(attempt) then
    return false
  end
  local expires = tonumber(j.lease_expires_at)
  if mode == 'live' then
    return expires >= now
  elseif mode == 'expired' then
    return expires < now
  end
  return true
end

-- Whether an unstarted job is reserved for someone until at least `now`.
local function reserved(j, now)
  return j.lease_owner ~= nil and tonumber(j.lease_expires_at) >= now
end

local function open_attempt(id, number, worker, now_s)
  local record = {number = number, worker = worker, started_at = now_s}
  redis.call('HSET', akey(id), number, cjson.encode(record))
end

local function close_attempt(id, number, now_s, outcome, err, traceback)
  local raw = redis.call('HGET', akey(id), number)
  if not raw then
    return
  end
  local record = cjson.decode(raw)
  record.finished_at = now_s
  record.outcome = outcome
  record.error = err
  record.traceback = traceback
  redis.call('HSET', akey(id), number, cjson.encode(record))
end

-- Fail for good a job whose hash cannot be read (`reason`, a CorruptRow line), running or
-- not; a running one's attempt ends as `outcome` (its last_outcome too). Only the fields
-- that name its index entries (state, queue, priority) are used, as the strings they are.
local function spoil(j, now_s, reason, outcome)
  local running = j.state == 'running'
  local changes = unleased({state = 'failed', finished_at = now_s, last_error = reason})
  if running then
    changes.last_outcome = outcome
  end
  save(j, changes)
  if running then
    close_attempt(j.id, j.attempts, now_s, outcome, reason, nil)
  end
end

-- Tell up to `n` waiting workers (BLPOP on the wake list) that work became due.
local function wake(n)
  if n <= 0 then
    return
  end
  local tokens = {}
  for i = 1, math.min(n, WAKE_CAP) do
    tokens[i] = '1'
  end
  redis.call('LPUSH', PFX .. 'wake', unpack(tokens))
  redis.call('LTRIM', PFX .. 'wake', 0, WAKE_CAP - 1)
end

-- Let a waiting job run: scheduled if its run_at is still ahead, else queued.
local function release_waiting(id, now)
  local j = id and load(id)
  if not j or j.state ~= 'waiting' then
    return
  end
  local state = 'queued'
  if tonumber(j.run_at) > now then
    state = 'scheduled'
  end
  save(j, {state = state})
  if state == 'queued' and not reserved(j, now) then
    wake(1)
  end
end
