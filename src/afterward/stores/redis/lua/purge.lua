-- purge: delete up to `batch` tasks per state that finished strictly before `before`,
-- with their attempts. ARGV: prefix, before, batch, states...
-- Returns {deleted, more} where more is 1 when a state may have more to delete.
local before, batch = ARGV[2], tonumber(ARGV[3])
local deleted, more = 0, 0
for i = 4, #ARGV do
  local state = ARGV[i]
  if TERMINAL[state] then
    local key = PFX .. 'finished:' .. state
    local ids = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. before, 'LIMIT', 0, batch)
    for _, id in ipairs(ids) do
      local j = load(id)
      if j and j.state == state then
        unindex(j)
        redis.call('DEL', jkey(id), akey(id))
        redis.call('ZREM', PFX .. 'created', id)
        deleted = deleted + 1
      else
        redis.call('ZREM', key, id) -- a stale entry: the job is gone or moved on
      end
    end
    if #ids == batch then
      more = 1
    end
  end
end
return {deleted, more}
