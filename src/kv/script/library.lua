-- dkv's Lua side of Redis 7.0 functions (see kv/script/library.rs), loaded
-- once per VM after prelude.lua as the chunk "=dkv" (so the error handler
-- skips its frames). Arguments: R (the real globals), I (the engine's
-- functions; I.exports holds what the prelude shares).
--
-- Every library's code runs with the globals table F: while the library
-- loads, F reads only `redis` (register_function, log, LOG_*, REDIS_VERSION,
-- REDIS_VERSION_NUM) and any other name is a missing global, as in
-- function_lua.c's load environment; while a function runs, F reads the
-- script environment, whose `redis` lacks EVAL's breakpoint, debug and
-- replicate_commands. F is read-only in both.
local R, I = ...
local X = I.exports
local protect, readonly, err_table, getmetatable0 = X.protect, X.readonly, X.err_table, X.getmetatable
local error, type, tostring, select, next, pcall0 = error, type, tostring, select, next, X.pcall
local rawget0, setmetatable0 = rawget, setmetatable
local lower, find = string.lower, string.find

local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end

-- A read-only view of t in which a missing field is a missing global.
local function strict(t)
  local p = protect(t)
  getmetatable0(p).__index = function(_, k)
    local v = rawget0(t, k)
    if v == nil then missing(k) end
    return v
  end
  return p
end

-- The functions' runtime `redis`: EVAL's without its debugger helpers.
local runtime_redis = {}
for k, v in next, X.redis do
  if k ~= 'breakpoint' and k ~= 'debug' and k ~= 'replicate_commands' then runtime_redis[k] = v end
end
local RUNTIME = setmetatable0({redis = protect(runtime_redis)}, {__index = R})

-- redis.register_function while a library loads.
local loading = nil
local FLAGS = {['no-writes'] = 1, ['allow-oom'] = 2, ['allow-stale'] = 4, ['no-cluster'] = 8,
  ['allow-cross-slot-keys'] = 16}

local function fail(msg) error(err_table('ERR ' .. msg)) end
-- lua_isstring: strings and numbers.
local function is_string(v) local t = type(v) return t == 'string' or t == 'number' end

local function read_flags(t)
  local bits, j = 0, 1
  while true do
    local v = t[j]
    j = j + 1
    if v == nil then return bits end
    if not is_string(v) then return nil end
    local bit = FLAGS[lower(tostring(v))]
    if not bit then return nil end
    if bits % (bit * 2) < bit then bits = bits + bit end
  end
end

local function register(...)
  if not loading then fail('redis.register_function can only be called on FUNCTION LOAD command') end
  local n = select('#', ...)
  if n < 1 or n > 2 then fail('wrong number of arguments to redis.register_function') end
  local name, desc, callback, flags = nil, nil, nil, 0
  if n == 1 then
    local t = ...
    if type(t) ~= 'table' then
      fail('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    for k, v in next, t do
      if not is_string(k) then fail('named argument key given to redis.register_function is not a string') end
      local key = lower(tostring(k))
      if key == 'function_name' then
        if not is_string(v) then fail('function_name argument given to redis.register_function must be a string') end
        name = tostring(v)
      elseif key == 'description' then
        if not is_string(v) then fail('description argument given to redis.register_function must be a string') end
        desc = tostring(v)
      elseif key == 'callback' then
        if type(v) ~= 'function' then fail('callback argument given to redis.register_function must be a function') end
        callback = v
      elseif key == 'flags' then
        if type(v) ~= 'table' then
          fail('flags argument to redis.register_function must be a table representing function flags')
        end
        flags = read_flags(v)
        if not flags then fail('unknown flag given') end
      else
        fail('unknown argument given to redis.register_function')
      end
    end
    if not name then fail('redis.register_function must get a function name argument') end
    if not callback then fail('redis.register_function must get a callback argument') end
  else
    local a, b = ...
    if not is_string(a) then fail('first argument to redis.register_function must be a string') end
    name = tostring(a)
    if type(b) ~= 'function' then fail('second argument to redis.register_function must be a function') end
    callback = b
  end
  if #name == 0 or find(name, '[^a-zA-Z0-9_]') then
    fail('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
  end
  if loading.by_name[name] then fail('Function already exists in the library') end
  loading.by_name[name] = callback
  local list = loading.list
  list[#list + 1] = {name, desc, flags}
end

local load_redis = strict({
  register_function = register, log = X.redis.log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = X.redis.REDIS_VERSION, REDIS_VERSION_NUM = X.redis.REDIS_VERSION_NUM,
})
local function load_index(_, k)
  if k == 'redis' then return load_redis end
  missing(k)
end

local F = protect({})
local fmt = getmetatable0(F)
fmt.__index = RUNTIME
I.library_globals = F

-- Runs a library's compiled chunk in the load environment: true and its
-- registrations ({name, description, flags} in order) and callbacks by
-- name, or false and the raw error value (no handler, as FUNCTION LOAD).
I.instantiate = function(chunk)
  loading = {list = {}, by_name = {}}
  fmt.__index = load_index
  local ok, err = pcall0(chunk)
  fmt.__index = RUNTIME
  local done = loading
  loading = nil
  if not ok then return false, err end
  return true, done.list, done.by_name
end

-- A function call as Redis makes it: the callback gets KEYS and ARGV as
-- its two arguments and its first result is the reply (not a tail call, so
-- the error handler sees the callback's own frame).
I.bind = function(f, keys, args)
  return function()
    local r = f(keys, args)
    return r
  end
end
