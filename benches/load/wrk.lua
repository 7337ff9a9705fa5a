-- wrk script for benches/load: one request spec file per scenario, results as JSON.
--
-- Environment (set by drive.py):
--   BENCH_SPEC    file with one request kind per line, tab-separated:
--                   weight  path  range_len  object_size  [header: value]...
--                 range_len > 0 asks for `range_len` bytes at a random offset in 0..object_size
--                 (a new offset for every request).
--   BENCH_EXPECT  optional status every response must have (e.g. 404, 304); responses with
--                 another status are counted as `unexpected`. Only set for small bodies: wrk hands
--                 each body to Lua when a `response` function exists, which costs throughput.
--   BENCH_OUT     where `done` writes the JSON summary.
--
-- A spec with a single line and no range uses wrk's static request (no Lua per request), so the
-- simple scenarios measure the server, not the script. Each wrk thread has its own Lua state:
-- per-thread counters are collected in `done` through the thread objects kept by `setup`.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

-- Splits on a one-character separator, keeping empty fields (Lua 5.1's gmatch with `[^x]*`
-- would also yield an empty match after every field).
local function split(s, sep)
   local out, start = {}, 1
   while true do
      local i = string.find(s, sep, start, true)
      if not i then
         table.insert(out, string.sub(s, start))
         return out
      end
      table.insert(out, string.sub(s, start, i - 1))
      start = i + 1
   end
end

local function read_spec(path)
   local kinds = {}
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      if line ~= "" then
         local cols = split(line, "\t")
         local headers = {}
         for i = 5, #cols do
            local name, value = string.match(cols[i], "^([^:]+):%s*(.*)$")
            if name then headers[name] = value end
         end
         table.insert(kinds, {
            weight = tonumber(cols[1]),
            path = cols[2],
            range_len = tonumber(cols[3]) or 0,
            size = tonumber(cols[4]) or 0,
            headers = headers,
         })
      end
   end
   f:close()
   return kinds
end

local kinds = read_spec(os.getenv("BENCH_SPEC"))
local dynamic = #kinds > 1 or kinds[1].range_len > 0

if not dynamic then
   wrk.path = kinds[1].path
   for k, v in pairs(kinds[1].headers) do wrk.headers[k] = v end
end

local cumulative, total_weight, prepared = {}, 0, {}

function init(args)
   local id = wrk.thread:get("id") or 0
   math.randomseed(os.time() * 1000 + id)
   for i, kind in ipairs(kinds) do
      total_weight = total_weight + kind.weight
      cumulative[i] = total_weight
      if kind.range_len == 0 then
         prepared[i] = wrk.format("GET", kind.path, kind.headers)
      end
   end
end

if dynamic then
   request = function()
      local i = 1
      if #kinds > 1 then
         local r = math.random() * total_weight
         while cumulative[i] < r do i = i + 1 end
      end
      if prepared[i] then return prepared[i] end
      local kind = kinds[i]
      local start = math.random(0, kind.size - kind.range_len)
      local headers = {}
      for k, v in pairs(kind.headers) do headers[k] = v end
      headers["Range"] = "bytes=" .. start .. "-" .. (start + kind.range_len - 1)
      return wrk.format("GET", kind.path, headers)
   end
end

unexpected = 0
local expect = tonumber(os.getenv("BENCH_EXPECT") or "")
if expect then
   response = function(status, headers, body)
      if status ~= expect then unexpected = unexpected + 1 end
   end
end

function done(summary, latency, requests)
   local bad = 0
   for _, thread in ipairs(threads) do
      bad = bad + (tonumber(thread:get("unexpected")) or 0)
   end
   local e = summary.errors
   local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
   out:write(string.format(
      '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"unexpected":%d,"checked":%s,' ..
      '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      bad, expect and "true" or "false",
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
   out:close()
end
