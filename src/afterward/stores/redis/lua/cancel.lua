-- cancel: cancel a task that has not started, and the waiting tasks behind it in its chain.
-- ARGV: prefix, now, id.
-- Returns {'missing'}, {'state', <state>} when it cannot be cancelled, or {'ok', ids...}.
local now_s, id = ARGV[2], ARGV[3]
local j = load(id)
if not j then
  return {'missing'}
end
if not UNSTARTED[j.state] then
  return {'state', j.state}
end
local out, from = {'ok'}, j.state
while j and j.state == from do
  save(j, unleased({state = 'cancelled', finished_at = now_s}))
  out[#out + 1] = j.id
  j, from = j.next_id and load(j.next_id), 'waiting'
end
return out
