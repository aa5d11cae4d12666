-- enqueue: store a batch of tasks (chains, unique keys, one reservation) atomically.
-- ARGV: prefix, now, reserve_for ('' for none), reservation expiry, then one JSON object
-- per task whose values are all strings (absent = NULL).
-- Returns each task's id, or the id of the unfinished task already holding its unique key.
local now_s, owner, expires = ARGV[2], ARGV[3], ARGV[4]
local now = tonumber(now_s)

-- Check everything before writing anything: a script's writes cannot be rolled back.
local ids, fresh, claimed, seen = {}, {}, {}, {}
for i = 5, #ARGV do
  local job = cjson.decode(ARGV[i])
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

local free = 0
for _, job in ipairs(fresh) do
  local j = {
    id = job.id,
    ['function'] = job['function'],
    payload = job.payload,
    queue = job.queue,
    priority = job.priority,
    run_at = job.run_at or now_s,
    attempts = '0',
    max_attempts = job.max_attempts,
    options = job.options,
    chain_id = job.chain_id,
    prev_id = job.prev_id,
    unique_key = job.unique_key,
    created_at = now_s,
  }
  if job.prev_id then
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
  index(j)
  redis.call('ZADD', PFX .. 'created', now_s, j.id)
  if j.prev_id and redis.call('EXISTS', jkey(j.prev_id)) == 1 then
    redis.call('HSET', jkey(j.prev_id), 'next_id', j.id)
  end
  if j.state == 'queued' and owner == '' then
    free = free + 1
  end
end
wake(free)
return ids
