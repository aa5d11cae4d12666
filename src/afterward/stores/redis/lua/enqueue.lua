-- enqueue: store a batch of tasks (chains, unique keys, one reservation) atomically.
-- ARGV: prefix, now, reserve_for ('' for none), reservation expiry, then the tasks as one
-- JSON array (afterward.stores.redis.hashes.encode_jobs) holding an array of 11 strings
-- per task, in the order of FIELDS below: one argument for the batch, whatever its size.
-- run_at, chain_id and prev_id are '' when absent (a time or an id is never empty);
-- unique_key is '' when absent, else '=' .. the key. Every value is a string, so times
-- are stored exactly as sent (cjson would turn a JSON number into a Lua number).
-- Returns each task's id, or the id of the unfinished task already holding its unique key.
local now_s, owner, expires = ARGV[2], ARGV[3], ARGV[4]
local now = tonumber(now_s)
local FIELDS = {
  'id', 'function', 'payload', 'queue', 'priority', 'run_at', 'max_attempts', 'options',
  'chain_id', 'prev_id', 'unique_key',
}

local function decode(values)
  local job = {}
  for k = 1, #FIELDS do
    local value = values[k]
    if value ~= '' then
      job[FIELDS[k]] = value
    end
  end
  if job.unique_key then
    job.unique_key = string.sub(job.unique_key, 2)
  end
  return job
end

-- Check everything before writing anything: a script's writes cannot be rolled back.
local ids, fresh, claimed, seen = {}, {}, {}, {}
for _, values in ipairs(cjson.decode(ARGV[5])) do
  local job = decode(values)
  local holder = false
  if job.unique_key then
    holder = claimed[job.unique_key] or unique_holder(job.unique_key)
  end
  if holder then
    ids[#ids + 1] = holder
  else
    if seen[job.id] or redis.call('EXISTS', jkey(job.id)) == 1 then
      return redis.error_reply('task ' .. job.id .. ' already exists')
    end
    seen[job.id] = true
    if job.unique_key then
      claimed[job.unique_key] = job.id
    end
    ids[#ids + 1] = job.id
    fresh[#fresh + 1] = job
  end
end

local free, created = 0, {}
for _, j in ipairs(fresh) do
  j.run_at = j.run_at or now_s
  j.attempts = '0'
  j.created_at = now_s
  if j.prev_id then
    j.state = 'waiting'
  elseif tonumber(j.run_at) > now then
    j.state = 'scheduled'
  else
    j.state = 'queued'
  end
  if owner ~= '' then
    j.lease_owner = owner
    j.lease_expires_at = expires
  end
  local flat = {}
  for field, value in pairs(j) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  redis.call('HSET', jkey(j.id), unpack(flat))
  created[#created + 1] = now_s
  created[#created + 1] = j.id
  if j.prev_id and (seen[j.prev_id] or redis.call('EXISTS', jkey(j.prev_id)) == 1) then
    redis.call('HSET', jkey(j.prev_id), 'next_id', j.id)
  end
  if j.state == 'queued' and owner == '' then
    free = free + 1
  end
end
index_all(fresh)
call_pairs('ZADD', PFX .. 'created', created)
wake(free)
return ids
