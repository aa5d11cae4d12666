-- lease_holders: the workers holding a lease on a running task or a reservation.
-- ARGV: prefix. Returns the distinct owners.
local owners, seen = {}, {}
for _, index in ipairs({'running', 'reserved'}) do
  for _, id in ipairs(redis.call('ZRANGE', PFX .. index, 0, -1)) do
    local owner = redis.call('HGET', jkey(id), 'lease_owner')
    if owner and not seen[owner] then
      seen[owner] = true
      owners[#owners + 1] = owner
    end
  end
end
return owners
