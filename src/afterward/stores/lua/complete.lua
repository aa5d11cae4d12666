-- complete: mark a running task succeeded and release the next task of its chain (fenced:
-- the worker must hold the attempt's unexpired lease).
-- ARGV: prefix, now, id, worker, attempt. Returns 1, or 0 when refused.
local now_s, id, worker, attempt = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = tonumber(now_s)
local j = load(id)
if not held(j, worker, attempt, now, 'live') then
  return 0
end
save(j, unleased({state = 'succeeded', finished_at = now_s}))
close_attempt(id, attempt, now_s, 'succeeded')
release_waiting(j.next_id, now)
return 1
