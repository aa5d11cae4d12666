-- retry: queue a failed or cancelled task again with a fresh budget of attempts (queued
-- if it heads its chain or its predecessor succeeded, else waiting); the cancelled tasks
-- behind it wait again.
-- ARGV: prefix, now, id, budget.
-- Returns {'missing', id} (the task, or its predecessor, is gone), {'state', <state>},
-- {'conflict', holder} (its unique key is held by another unfinished task), or {'ok'}.
local now_s, id, budget = ARGV[2], ARGV[3], tonumber(ARGV[4])
local j = load(id)
if not j then
  return {'missing', id}
end
if j.state ~= 'failed' and j.state ~= 'cancelled' then
  return {'state', j.state}
end
local state = 'queued'
if j.prev_id then
  local prev = load(j.prev_id)
  -- A purged predecessor had finished long ago: nothing to wait for.
  if prev and prev.state ~= 'succeeded' then
    state = 'waiting'
  end
end
if j.unique_key then
  local holder = unique_holder(j.unique_key)
  if holder and holder ~= id then
    return {'conflict', holder}
  end
end
save(j, unleased({
  state = state,
  run_at = now_s,
  finished_at = false,
  max_attempts = tonumber(j.attempts) + budget,
}))
local next_id = j.next_id
while next_id do
  local n = load(next_id)
  if not n or n.state ~= 'cancelled' then
    break
  end
  save(n, unleased({state = 'waiting', finished_at = false}))
  next_id = n.next_id
end
if state == 'queued' then
  wake(1)
end
return {'ok'}
