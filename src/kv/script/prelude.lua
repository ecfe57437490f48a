-- dkv's Lua side of the Redis 7.0 script environment (see kv/script/vm.rs).
-- Loaded once per VM as the chunk "=dkv"; the error handler skips the frames
-- of this chunk, so positions point at the user's script as Redis's do.
-- Arguments: R (the real globals), G (the read-only view scripts see),
-- I (the engine's Rust functions; never reachable from a script).
local R, G, I = ...
local error, type, tostring, select, unpack, tonumber = error, type, tostring, select, unpack, tonumber
local rawset0, rawget0, setmetatable0, getmetatable0 = rawset, rawget, setmetatable, getmetatable
local pcall0, xpcall0, floor, ceil = pcall, xpcall, math.floor, math.ceil
local READONLY = 'Attempt to modify a readonly table'

-- Tables a script may not change: the read-only proxies, keyed weakly.
local protected = setmetatable0({}, {__mode = 'k'})
-- What getmetatable shows for a protected table's hidden metatable.
local shown = setmetatable0({}, {__mode = 'k'})
local NONE = {}

local function readonly() error(READONLY, 2) end

-- A read-only view of t: reads go through, writes raise Redis's error.
local function protect(t, show)
  local p = {}
  local mt = {__index = t, __newindex = readonly}
  setmetatable0(p, mt)
  protected[p] = true
  shown[mt] = show or NONE
  return p
end

local function check_writable(t)
  if protected[t] then error(READONLY, 0) end
end

R.rawset = function(t, k, v) check_writable(t); return rawset0(t, k, v) end
R.setmetatable = function(t, mt) check_writable(t); return setmetatable0(t, mt) end
R.getmetatable = function(o)
  local mt = getmetatable0(o)
  local s = shown[mt]
  if s == NONE then return nil end
  if s ~= nil then return s end
  return mt
end

-- Redis 7's pcall: an error table with an `err` field comes back as that
-- field; nothing catches a script stopped by the execution budget.
local function pcall_result(ok, ...)
  if ok then return true, ... end
  local e = ...
  if I.stopped() then error(e, 0) end
  if type(e) == 'userdata' then e = I.unwrap(e) end
  if type(e) == 'table' then
    local m = e.err
    if type(m) == 'string' or type(m) == 'number' then e = m end
  end
  return false, e
end
R.pcall = function(f, ...) return pcall_result(pcall0(f, ...)) end

local function rethrow_stopped(ok, ...)
  if not ok and I.stopped() then error((...), 0) end
  return ok, ...
end
R.xpcall = function(f, h) return rethrow_stopped(xpcall0(f, h)) end
local co = R.coroutine
local resume0 = co.resume
co.resume = function(...) return rethrow_stopped(resume0(...)) end

-- Deterministic stand-ins for what would differ between replicas: memory
-- counts and object addresses.
R.collectgarbage = function() return 0 end
R.gcinfo = function() return 0 end
local tostring0 = tostring
local ids = setmetatable0({}, {__mode = 'k'})
local next_id = 0
R.tostring = function(v)
  local t = type(v)
  if (t == 'table' or t == 'function' or t == 'thread' or t == 'userdata')
      and not (getmetatable0(v) and rawget0(getmetatable0(v), '__tostring')) then
    local id = ids[v]
    if not id then
      -- The first id of a call tells the engine to reset them after it.
      if next_id == 0 then I.ids_handed_out() end
      next_id = next_id + 1
      id = next_id
      ids[v] = id
    end
    return ('%s: 0x%08x'):format(t, id)
  end
  return tostring0(v)
end
-- Called before a call when the last one handed out an id (the engine
-- skips it otherwise: the table is still empty then).
I.reset_ids = function()
  ids = setmetatable0({}, {__mode = 'k'}); next_id = 0
end

-- table functions write raw: refuse protected tables as Redis's Lua does.
local tbl = R.table
for _, name in ipairs({'insert', 'remove', 'sort', 'setn'}) do
  local f = tbl[name]
  if f then tbl[name] = function(t, ...) check_writable(t); return f(t, ...) end end
end

-- math.random / math.randomseed: Redis's rand48, reset before every call.
local function truncate(x) if x >= 0 then return floor(x) else return ceil(x) end end
local function checkint(i, fname, v, present)
  if type(v) == 'number' then return truncate(v) end
  if type(v) == 'string' then
    local x = tonumber(v)
    if x then return truncate(x) end
  end
  local got = present and type(v) or 'no value'
  error(("bad argument #%d to '%s' (number expected, got %s)"):format(i, fname, got), 3)
end
local function argerror(i, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(i, fname, msg), 3)
end
local draw, seed = I.draw, I.seed
R.math.random = function(...)
  local n = select('#', ...)
  local r = draw()
  if n == 0 then return r end
  local a, b = ...
  if n == 1 then
    local u = checkint(1, 'random', a, true)
    if u < 1 then argerror(1, 'random', 'interval is empty') end
    return floor(r * u) + 1
  elseif n == 2 then
    local l = checkint(1, 'random', a, true)
    local u = checkint(2, 'random', b, true)
    if l > u then argerror(2, 'random', 'interval is empty') end
    return floor(r * (u - l + 1)) + l
  end
  error('wrong number of arguments', 2)
end
R.math.randomseed = function(...)
  local v = ...
  seed(checkint(1, 'randomseed', v, select('#', ...) > 0))
end

-- The redis table.
local redis = {}
-- redis.call is a Rust (C) function, as in Redis, so a tail call to it
-- keeps the script's frame and its error position.
redis.call = I.call
redis.pcall = function(...)
  local _, v = I.dispatch(true, ...)
  return v
end
local function err_table(msg) return {err = msg} end
redis.error_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return err_table('ERR wrong number or type of arguments')
  end
  if s:sub(1, 1) ~= '-' then s = '-' .. s end
  return err_table(I.error_text(s))
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return err_table('ERR wrong number or type of arguments')
  end
  return {ok = s}
end
redis.sha1hex = function(...)
  if select('#', ...) ~= 1 then error(err_table('ERR wrong number of arguments')) end
  local s = ...
  if type(s) ~= 'string' and type(s) ~= 'number' then s = '' end
  return I.sha1(tostring0(s))
end
redis.log = function(...)
  local n = select('#', ...)
  if n < 2 then error(err_table('ERR redis.log() requires two arguments or more.')) end
  local level = tonumber((...))
  if not level then error(err_table('ERR First argument must be a number (log level).')) end
  level = truncate(level)
  if level < 0 or level > 3 then error(err_table('ERR Invalid debug level.')) end
  -- The state machine does no I/O: script log lines are dropped.
end
redis.setresp = function(...)
  if select('#', ...) ~= 1 then error(err_table('ERR redis.setresp() requires one argument.')) end
  local v = truncate(tonumber((...)) or 0)
  if v ~= 2 and v ~= 3 then error(err_table('ERR RESP version must be 2 or 3.')) end
  I.setresp(v)
end
redis.set_repl = function(...)
  if select('#', ...) ~= 1 then error(err_table('ERR redis.set_repl() requires two arguments.')) end
  local v = truncate(tonumber((...)) or 0)
  if v < 0 or v > 3 then
    error(err_table('ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.'))
  end
end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.acl_check_cmd = function(...)
  local ok, v = I.dispatch(false, ...)
  if ok then return v end
  error(v)
end
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = I.version, I.version_num
R.redis = protect(redis)

-- What the FUNCTION side (library.lua) builds on.
I.exports = {protect = protect, redis = redis, readonly = readonly, err_table = err_table,
  getmetatable = getmetatable0, pcall = pcall0}

-- Lock everything reachable from the globals, as Redis does once at start.
local string_mt = getmetatable0('')
for _, name in ipairs(I.libraries) do
  local t = rawget0(R, name)
  if type(t) == 'table' then R[name] = protect(t) end
end
if string_mt then
  string_mt.__index = R.string
  shown[string_mt] = protect(string_mt)
end
R._G = G
-- The globals: reads of a missing name and every write raise Redis's errors.
setmetatable0(R, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring0(k) .. "'", 2)
end})
local gmt = {__index = R, __newindex = readonly}
setmetatable0(G, gmt)
protected[G] = true
shown[gmt] = protect({})
