-- complete: mark running tasks succeeded and release the next task of each one's chain
-- (fenced: the worker must hold the attempt's unexpired lease, checked task by task).
-- ARGV: prefix, now, worker, then an id and an attempt number per task.
-- Returns the ids completed (a refused one is left out).
local now_s, worker = ARGV[2], ARGV[3]
local now = tonumber(now_s)
local done = {}
for i = 4, #ARGV - 1, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local j = load(id)
  if held(j, worker, attempt, now, 'live') then
    local changes = {state = 'succeeded', finished_at = now_s, last_outcome = 'succeeded'}
    save(j, unleased(changes))
    close_attempt(id, attempt, now_s, 'succeeded')
    release_waiting(j.next_id, now)
    done[#done + 1] = id
  end
end
return done
