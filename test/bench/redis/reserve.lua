-- What consistency.reserve(sku, qty, reservation_id) decides, as one Redis script (Redis runs a
-- script alone, so it is atomic).  KEYS[1]: the SKU's available units (a string counter);
-- KEYS[2]: the SKU's reservations (a hash: reservation id -> qty).  ARGV[1]: reservation id,
-- ARGV[2]: qty.  A known id is a retry: it answers 'reserved' again and takes nothing; else
-- the stock is checked, decremented with DECRBY and the id recorded.  Unlike reserve(), it
-- keeps no expiry time and no per-reservation status (that would cost Redis more, not less).
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
	if held == ARGV[2] then
		return 'reserved'
	end
	return redis.error_reply('reservation ' .. ARGV[1] .. ' exists with another qty')
end
local qty = tonumber(ARGV[2])
local avail = tonumber(redis.call('GET', KEYS[1]) or '0')
if avail < qty then
	return 'insufficient'
end
redis.call('DECRBY', KEYS[1], qty)
redis.call('HSET', KEYS[2], ARGV[1], qty)
return 'reserved'
