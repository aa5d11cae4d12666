-- extend_leases: push to `expiry` the lease (or reservation) of each task the worker
-- still holds: same owner, not expired, not finished.
-- ARGV: prefix, now, worker, expiry, ids... Returns the ids still held.
local now, worker, expires = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local kept = {}
for i = 5, #ARGV do
  local j = load(ARGV[i])
  if j and j.lease_owner == worker and not TERMINAL[j.state]
      and tonumber(j.lease_expires_at) >= now then
    save(j, {lease_expires_at = expires})
    kept[#kept + 1] = j.id
  end
end
return kept
