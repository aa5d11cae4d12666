-- spoil: fail for good running tasks whose hashes the caller cannot read (see acquire.lua).
-- ARGV: prefix, now, outcome, then four per task: id, holder, attempts (as stored), reason.
-- Fenced: each must still be running, held by that holder at that attempt; its attempt
-- ends as `outcome`. Returns how many were failed.
local now_s, outcome = ARGV[2], ARGV[3]
local failed = 0
for i = 4, #ARGV, 4 do
  local j = load(ARGV[i])
  if j and j.state == 'running' and j.lease_owner == ARGV[i + 1] and j.attempts == ARGV[i + 2] then
    spoil(j, now_s, ARGV[i + 3], outcome)
    failed = failed + 1
  end
end
return failed
