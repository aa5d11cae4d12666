-- lost: the first half of recovery. Drops the reservations of dead workers, and returns
-- the running tasks whose lease expired before now or whose holder is dead (flat
-- field/value arrays), for the caller to decide on and pass to fail.lua one by one.
-- ARGV: prefix, now, dead workers...
local now_s = ARGV[2]
local now = tonumber(now_s)
local dead, any_dead = {}, false
for i = 3, #ARGV do
  dead[ARGV[i]] = true
  any_dead = true
end

local freed = 0
if any_dead then
  for _, id in ipairs(redis.call('ZRANGE', PFX .. 'reserved', 0, -1)) do
    local j = load(id)
    if j and j.lease_owner and dead[j.lease_owner] and UNSTARTED[j.state] then
      save(j, unleased({}))
      if j.state == 'queued' then
        freed = freed + 1
      end
    end
  end
end
wake(freed)

local out, taken = {}, {}
local function add(id)
  local j = load(id)
  if j and j.state == 'running' and not taken[id] then
    taken[id] = true
    out[#out + 1] = redis.call('HGETALL', jkey(id))
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', PFX .. 'running', '-inf', '(' .. now_s)) do
  add(id)
end
if any_dead then
  for _, id in ipairs(redis.call('ZRANGE', PFX .. 'running', 0, -1)) do
    if dead[redis.call('HGET', jkey(id), 'lease_owner')] then
      add(id)
    end
  end
end
return out
