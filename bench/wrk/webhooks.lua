-- wrk script for bench/serve.sh: POSTs pre-signed webhook bodies, each
-- thread its own share (so no body is sent twice in a run unless the run
-- outlasts the file). WRK_BODIES names the file ("signature<TAB>body" per
-- line); WRK_DELAY_MS paces each connection (fixed-rate runs). Several wrk
-- processes share one file without sending a body twice with
-- WRK_SHARD (0-based) of WRK_SHARDS.
local bodies, signatures = {}, {}
local next_index, first_index, step = 1, 1, 1
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local threads, counter = {}, 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("WRK_BODIES")) do
    local signature, body = line:match("^(%S+)\t(.*)$")
    signatures[#signatures + 1] = signature
    bodies[#bodies + 1] = body
  end
  local shards = tonumber(os.getenv("WRK_SHARDS") or "1")
  local shard = tonumber(os.getenv("WRK_SHARD") or "0")
  step = tonumber(os.getenv("WRK_THREADS") or "1") * shards
  first_index = (thread_id - 1) * shards + shard + 1
  next_index = first_index
end

function request()
  local i = next_index
  next_index = next_index + step
  if next_index > #bodies then next_index = first_index end
  return wrk.format("POST", "/webhook", {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = signatures[i],
  }, bodies[i])
end

if pause > 0 then
  function delay() return pause end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f per_second=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non_2xx=%d socket_errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
