-- fail: record a failed (or lost) attempt (fenced); `outcome` becomes the task's
-- last_outcome. No retry_at: failed for good; retry_at after now: scheduled then;
-- otherwise queued at once.
-- ARGV: prefix, now, id, worker, attempt, mode, outcome, error, traceback, retry_at ('' =
-- none). mode 'live' (a worker reporting) requires an unexpired lease; recovery passes
-- 'expired' (the lease must have run out) or 'any' (the holder is known dead).
-- Returns 1, or 0 when refused.
local now_s, id, worker, attempt, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local outcome, err, traceback, retry_at = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local now = tonumber(now_s)
local j = load(id)
if not held(j, worker, attempt, now, mode) then
  return 0
end
local changes = unleased({last_error = err, last_outcome = outcome})
if retry_at == '' then
  changes.state = 'failed'
  changes.finished_at = now_s
else
  changes.run_at = retry_at
  changes.state = 'queued'
  if tonumber(retry_at) > now then
    changes.state = 'scheduled'
  end
end
save(j, changes)
close_attempt(id, attempt, now_s, outcome, err, traceback)
if changes.state == 'queued' then
  wake(1)
end
return 1
