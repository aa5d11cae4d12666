-- release: hand the worker's running tasks among `ids` back to the queue without
-- spending their attempt (budget + 1, attempt outcome 'released'), if it still holds an
-- unexpired lease on them; and drop its reservations among `ids`. The task's last_outcome
-- stays: a hand-back does not count (see `Job.last_outcome`).
-- ARGV: prefix, now, worker, ids... Returns how many running tasks were handed back.
local now_s, worker = ARGV[2], ARGV[3]
local now = tonumber(now_s)
local handed, freed = 0, 0
for i = 4, #ARGV do
  local j = load(ARGV[i])
  if j and held(j, worker, j.attempts, now, 'live') then
    local number = j.attempts
    save(j, unleased({state = 'queued', max_attempts = tonumber(j.max_attempts) + 1}))
    close_attempt(j.id, number, now_s, 'released')
    handed = handed + 1
  elseif j and j.lease_owner == worker and UNSTARTED[j.state] then
    save(j, unleased({}))
    if j.state == 'queued' then
      freed = freed + 1
    end
  end
end
wake(handed + freed)
return handed
