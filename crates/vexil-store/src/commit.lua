-- One atomic Vexil write on Redis: version checks, then definitions, states, users, tokens, one change per touched
-- flag and environment (with its revision, in a bounded stream), and the audit records. Nothing is written unless
-- every check passes, and Redis runs the whole script without interleaving anything else.
--
-- ARGV[1] is the plan (JSON). Documents travel as JSON text and are stored as they are, so the states at
-- flags:<env>:<flag> are exactly what the server wrote.
local plan = cjson.decode(ARGV[1])

local function version_of(doc)
  if not doc then return 0 end
  return cjson.decode(doc).version
end

-- A write under an idempotency key that a committed write used already is not done again.
if plan.idempotency and redis.call('EXISTS', plan.idempotency.key) == 1 then
  return cjson.encode({duplicate = plan.idempotency.name})
end

-- Versions the write was decided on without writing them (cjson decodes an absent env as nil).
for _, read in ipairs(plan.reads or {}) do
  local actual, target
  if read.env then
    actual = version_of(redis.call('GET', 'flags:' .. read.env .. ':' .. read.flag))
    target = read.flag .. ' in ' .. read.env
  else
    actual = version_of(redis.call('HGET', 'vexil:definitions', read.flag))
    target = 'flag ' .. read.flag
  end
  if actual ~= read.expected then
    return cjson.encode({conflict = target, expected = read.expected, actual = actual})
  end
end

-- User records the write was decided on (the caller's role, the admins counted), exactly as they were read.
-- Compared field by field (user documents are flat), so a record written by an older server still matches.
local function same_user(stored, expected)
  if stored == nil or expected == nil then return stored == expected end
  local a, b = cjson.decode(stored), cjson.decode(expected)
  for key, value in pairs(a) do if b[key] ~= value then return false end end
  for key, value in pairs(b) do if a[key] ~= value then return false end end
  return true
end
for _, read in ipairs(plan.user_reads or {}) do
  local stored = redis.call('HGET', 'vexil:users', read.email)
  if stored == false then stored = nil end
  if not same_user(stored, read.doc) then
    return cjson.encode({conflict = 'user ' .. read.email, expected = 0, actual = 1})
  end
end

-- The credential the write was made with is still usable (RFC 3339 UTC times compare as text).
for _, read in ipairs(plan.token_reads or {}) do
  local doc = redis.call('HGET', 'vexil:tokens', read[1])
  local usable = false
  if doc then
    local token = cjson.decode(doc)
    usable = token.revoked_at == nil or token.revoked_at == cjson.null
    if usable and token.expires_at ~= nil and token.expires_at ~= cjson.null then usable = token.expires_at > read[2] end
  end
  if not usable then return cjson.encode({conflict = 'token ' .. read[1], expected = 0, actual = 1}) end
end

for _, definition in ipairs(plan.definitions) do
  local actual = version_of(redis.call('HGET', 'vexil:definitions', definition.name))
  if actual ~= definition.expected then
    return cjson.encode({conflict = 'flag ' .. definition.name, expected = definition.expected, actual = actual})
  end
end

local written_definitions = {}
for _, definition in ipairs(plan.definitions) do written_definitions[definition.name] = definition.doc end

for _, state in ipairs(plan.states) do
  if redis.call('HEXISTS', 'vexil:revisions', state.env) == 0 then
    return cjson.encode({invalid = 'environment `' .. state.env .. '` is not known to the store'})
  end
  if not written_definitions[state.flag] and redis.call('HEXISTS', 'vexil:definitions', state.flag) == 0 then
    return cjson.encode({invalid = 'flag `' .. state.flag .. '` is not defined'})
  end
  local actual = version_of(redis.call('GET', 'flags:' .. state.env .. ':' .. state.flag))
  if actual ~= state.expected then
    return cjson.encode({conflict = state.flag .. ' in ' .. state.env, expected = state.expected, actual = actual})
  end
end

-- The audit chain is sealed by the caller from the tip it read; a tip that moved since means: seal again.
if #plan.audit > 0 then
  local tip = tonumber(redis.call('HGET', 'vexil:audit:meta', 'tip') or '0')
  if tip ~= plan.audit_tip then return cjson.encode({retry = true}) end
end

for _, definition in ipairs(plan.definitions) do
  redis.call('HSET', 'vexil:definitions', definition.name, definition.doc)
end
local written_states = {}
for _, state in ipairs(plan.states) do
  redis.call('SET', 'flags:' .. state.env .. ':' .. state.flag, state.doc)
  written_states[state.env .. ':' .. state.flag] = state.doc
end
for _, user in ipairs(plan.users) do
  redis.call('HSET', 'vexil:users', user.email, user.doc)
end
for _, token in ipairs(plan.tokens) do
  redis.call('HSET', 'vexil:tokens', token.id, token.doc)
  redis.call('HSET', 'vexil:token_hashes', token.hash, token.id)
end

local changes = {}
for _, env in ipairs(plan.environments) do
  local touched, seen = {}, {}
  for _, definition in ipairs(plan.definitions) do
    if not seen[definition.name] then seen[definition.name] = true; table.insert(touched, definition.name) end
  end
  for _, state in ipairs(plan.states) do
    if state.env == env and not seen[state.flag] then seen[state.flag] = true; table.insert(touched, state.flag) end
  end
  for _, flag in ipairs(touched) do
    local state = written_states[env .. ':' .. flag] or redis.call('GET', 'flags:' .. env .. ':' .. flag)
    -- A definition written without a state in this environment has nothing to announce there.
    if state then
      local definition = written_definitions[flag] or redis.call('HGET', 'vexil:definitions', flag)
      local revision = redis.call('HINCRBY', 'vexil:revisions', env, 1)
      local doc = '{"environment":' .. cjson.encode(env) .. ',"revision":' .. revision ..
        ',"definition":' .. definition .. ',"state":' .. state .. '}'
      redis.call('XADD', 'vexil:changes:' .. env, 'MAXLEN', plan.retention, '0-' .. revision, 'doc', doc)
      table.insert(changes, doc)
    end
  end
end

for _, record in ipairs(plan.audit) do
  redis.call('HSET', 'vexil:audit', record.id, record.doc)
  redis.call('ZADD', 'vexil:audit:all', record.id, record.id)
  if record.flag ~= cjson.null then redis.call('ZADD', 'vexil:audit:flag:' .. record.flag, record.id, record.id) end
  if record.environment ~= cjson.null then redis.call('ZADD', 'vexil:audit:environment:' .. record.environment, record.id, record.id) end
  redis.call('ZADD', 'vexil:audit:user:' .. record.user, record.id, record.id)
  redis.call('ZADD', 'vexil:audit:action:' .. record.action, record.id, record.id)
  redis.call('HSET', 'vexil:audit:meta', 'tip', record.id, 'hash', record.hash)
end

if plan.idempotency then
  redis.call('SET', plan.idempotency.key, plan.idempotency.doc, 'EX', plan.idempotency.seconds)
end

return cjson.encode({changes = changes})
