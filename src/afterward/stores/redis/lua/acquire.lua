-- acquire: take up to `limit` due tasks for a worker, highest priority, then oldest
-- run_at, then id first; each becomes running under the worker's lease, its attempts go
-- up by one and a new attempt record is opened.
-- ARGV: prefix, now, worker, lease expiry, limit, mode, names...
--   mode 'all': every queue; 'queues': only the queues named; 'ids': only the tasks named,
--   where the worker's own reservations may be taken.
-- A due job whose numbers this script needs cannot be read as numbers is failed for good
-- instead (`spoil`), and the jobs behind it are taken: one such hash never stops the queue.
-- The caller reads the hashes returned one by one and hands back those it cannot read
-- (spoil.lua).
-- Returns the acquired jobs' hashes (flat field/value arrays), in order.
local now_s, worker, expires, limit, mode = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local now = tonumber(now_s)

-- false, after failing `j` for good: its `field` is not a number.
local function spoiled(j, field)
  spoil(j, now_s, 'CorruptRow: ' .. field .. ' is not a number', 'failed')
  return false
end

local function eligible(j, by_id)
  if not j or not DUE[j.state] then
    return false
  end
  local run_at = tonumber(j.run_at)
  if not run_at then
    return spoiled(j, 'run_at')
  elseif run_at > now then
    return false
  elseif not tonumber(j.attempts) then
    return spoiled(j, 'attempts')
  elseif by_id and not tonumber(j.priority) then
    return spoiled(j, 'priority')
  end
  if j.lease_owner == nil or (by_id and j.lease_owner == worker) then
    return true
  end
  local lease_expires_at = tonumber(j.lease_expires_at)
  if not lease_expires_at then
    return spoiled(j, 'lease_expires_at')
  end
  return lease_expires_at < now
end

local function before(a, b)
  if a.priority ~= b.priority then
    return a.priority > b.priority
  end
  if a.run_at ~= b.run_at then
    return a.run_at < b.run_at
  end
  return bytes_lt(a.id, b.id)
end

-- Up to `need` eligible jobs of one lane, in (run_at, id) order. An entry whose job is
-- gone, not due any more (its hash was changed by hand) or failed here is dropped.
local function from_lane(name, need, into)
  local key, offset, got = PFX .. 'ready:' .. name, 0, 0
  while got < need do
    local batch = redis.call('ZRANGEBYSCORE', key, '-inf', now_s, 'LIMIT', offset, need - got)
    if #batch == 0 then
      return
    end
    for _, id in ipairs(batch) do
      local j = load(id)
      if eligible(j, false) then
        into[#into + 1] = {priority = 0, run_at = tonumber(j.run_at), id = id, job = j}
        got = got + 1
      elseif not j or not DUE[j.state] then
        redis.call('ZREM', key, id)
        offset = offset - 1
      end
    end
    offset = offset + #batch
  end
end

local picked = {}

if mode == 'ids' then
  local candidates, seen = {}, {}
  for i = 7, #ARGV do
    local id = ARGV[i]
    if not seen[id] then
      seen[id] = true
      local j = load(id)
      if eligible(j, true) then
        candidates[#candidates + 1] = {
          priority = tonumber(j.priority), run_at = tonumber(j.run_at), id = id, job = j,
        }
      end
    end
  end
  table.sort(candidates, before)
  for i = 1, math.min(limit, #candidates) do
    picked[i] = candidates[i].job
  end
else
  local wanted = nil
  if mode == 'queues' then
    wanted = {}
    for i = 7, #ARGV do
      wanted[ARGV[i]] = true
    end
  end
  -- Lanes ('<priority>:<queue>') by priority, highest first; within one priority the
  -- lanes' heads are merged by (run_at, id).
  local lanes = redis.call('ZREVRANGE', PFX .. 'lanes', 0, -1, 'WITHSCORES')
  local i = 1
  while i <= #lanes and #picked < limit do
    local score, group = lanes[i + 1], {}
    while i <= #lanes and lanes[i + 1] == score do
      local name = lanes[i]
      local queue = name:sub(name:find(':', 1, true) + 1)
      if wanted == nil or wanted[queue] then
        group[#group + 1] = name
      end
      i = i + 2
    end
    local need, candidates = limit - #picked, {}
    for _, name in ipairs(group) do
      from_lane(name, need, candidates)
    end
    table.sort(candidates, before)
    for c = 1, math.min(need, #candidates) do
      picked[#picked + 1] = candidates[c].job
    end
  end
end

local out = {}
for _, j in ipairs(picked) do
  local number = tonumber(j.attempts) + 1
  save(j, {state = 'running', attempts = number, lease_owner = worker, lease_expires_at = expires})
  open_attempt(j.id, number, worker, now_s)
  out[#out + 1] = redis.call('HGETALL', jkey(j.id))
end
return out
