package redis

import goredis "github.com/redis/go-redis/v9"

// The scripts run atomically on the Redis server, which is what makes the log a log: a
// sequence number is taken and its stream entry written in one step, so entries are always
// in Seq order and no other node can interleave. Every script that writes first checks the
// epoch (and that the sequence did not go backwards, which means Redis lost acknowledged
// writes): a wiped or rolled-back Redis is never appended to under the old epoch.
//
// KEYS, in this order, for every script:
//
//	1 epoch   2 seq   3 log (stream)   4 retained (hash)   5 bytes   6 front   7 dropped (hash)   8 refs (hash)
//
// Per-topic lists ("<base>t:<topic>") and idempotency keys ("<base>i:<key>") are built in the
// script from ARGV base; they share the keys' hash tag, so they live in the same slot.
const common = `
local function field(f, name)
  for j = 1, #f, 2 do if f[j] == name then return f[j+1] end end
  return nil
end

-- remove deletes the entry of seq s, keeping the byte count right.
local function remove(s)
  local e = redis.call('XRANGE', KEYS[3], s..'-0', s..'-0')
  if #e == 0 then return end
  local d = field(e[1][2], 'd') or ''
  redis.call('DECRBY', KEYS[5], #d)
  redis.call('XDEL', KEYS[3], s..'-0')
end

-- release takes seq s out of topic t's budget; a message on several topics goes when the
-- last of them lets it go.
local function release(s, t)
  local d = tonumber(redis.call('HGET', KEYS[7], t) or '0')
  if tonumber(s) > d then redis.call('HSET', KEYS[7], t, s) end
  local r = redis.call('HGET', KEYS[8], s)
  if r then
    r = tonumber(r) - 1
    if r > 0 then redis.call('HSET', KEYS[8], s, r) return end
    redis.call('HDEL', KEYS[8], s)
  end
  remove(s)
end

-- trim applies the whole-log limits from the front, oldest first, and records in front the
-- highest seq it removed. Bounded per call; the next call continues.
local function trim(nowms, maxMsgs, maxBytes, maxAgeMs)
  for _ = 1, 1000 do
    local e = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
    if #e == 0 then return end
    local over = (maxMsgs > 0 and redis.call('XLEN', KEYS[3]) > maxMsgs)
      or (maxBytes > 0 and tonumber(redis.call('GET', KEYS[5]) or '0') > maxBytes)
      or (maxAgeMs > 0 and tonumber(field(e[1][2], 'ts')) / 1e6 < nowms - maxAgeMs)
    if not over then return end
    local s = string.match(e[1][1], '^(%d+)')
    redis.call('DECRBY', KEYS[5], #(field(e[1][2], 'd') or ''))
    redis.call('XDEL', KEYS[3], e[1][1])
    redis.call('HDEL', KEYS[8], s)
    if tonumber(s) > tonumber(redis.call('GET', KEYS[6]) or '0') then redis.call('SET', KEYS[6], s) end
  end
end

local function split(s)
  local out = {}
  for t in string.gmatch(s, '[^,]+') do out[#out+1] = t end
  return out
end

local function check(epoch, minseq)
  if redis.call('GET', KEYS[1]) ~= epoch then return redis.error_reply('HERALDEPOCH log epoch changed') end
  if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(minseq) then
    return redis.error_reply('HERALDLOST sequence went backwards: acknowledged messages were lost')
  end
  return nil
end
`

// appendScript: ARGV 1 epoch, 2 minseq, 3 now (unix ns), 4 now (unix ms), 5 per topic,
// 6 max msgs, 7 max bytes, 8 max age ms, 9 dedup window ms, 10 base, 11 count, then five
// per message: topics (comma-separated), event, data, retain ("1" or ""), idempotency key.
// It returns seq, dup (0/1) for each message.
var appendScript = goredis.NewScript(common + `
local bad = check(ARGV[1], ARGV[2])
if bad then return bad end
local now, per, base = ARGV[3], tonumber(ARGV[5]), ARGV[10]
local out = {}
local i = 12
for _ = 1, tonumber(ARGV[11]) do
  local tp, ev, d, rt, key = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  i = i + 5
  local first = false
  if key ~= '' then first = redis.call('GET', base..'i:'..key) end
  if first then
    out[#out+1] = tonumber(first)
    out[#out+1] = 1
  else
    local seq = redis.call('INCR', KEYS[2])
    redis.call('XADD', KEYS[3], seq..'-0', 'tp', tp, 'ev', ev, 'ts', now, 'rt', rt, 'd', d)
    redis.call('INCRBY', KEYS[5], #d)
    if key ~= '' then redis.call('SET', base..'i:'..key, seq, 'PX', ARGV[9]) end
    local topics = split(tp)
    if rt == '1' then
      local blob = seq..'\n'..now..'\n'..ev..'\n'..tp..'\n'..d
      for _, t in ipairs(topics) do redis.call('HSET', KEYS[4], t, blob) end
    end
    if per > 0 then
      if #topics > 1 then redis.call('HSET', KEYS[8], seq, #topics) end
      for _, t in ipairs(topics) do
        local k = base..'t:'..t
        redis.call('RPUSH', k, seq)
        while redis.call('LLEN', k) > per do release(redis.call('LPOP', k), t) end
      end
    end
    out[#out+1] = seq
    out[#out+1] = 0
  end
end
trim(tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
return out
`)

// trimScript applies the whole-log limits without appending and returns front.
// ARGV 1 now ms, 2 max msgs, 3 max bytes, 4 max age ms.
var trimScript = goredis.NewScript(common + `
trim(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
return tonumber(redis.call('GET', KEYS[6]) or '0')
`)

// rollScript replaces the epoch if it is still ARGV 1 ("" for missing) and returns the epoch
// in force afterwards. ARGV 2 is the new epoch. Whoever rolls first wins; the others adopt.
var rollScript = goredis.NewScript(`
local e = redis.call('GET', KEYS[1])
if (e or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return e
`)
