-- wrk script for bench/serve.sh: GET /v1/windows for users of the
-- benchmark log (WRK_USERS: one `business/user?at=instant` per line, an
-- hour after the user wrote), bearer WRK_TOKEN.
local users = {}
local i = 0
local token = os.getenv("WRK_TOKEN")
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end

function init(args)
  for line in io.lines(os.getenv("WRK_USERS")) do users[#users + 1] = line end
end

function request()
  i = i % #users + 1
  return wrk.format("GET", "/v1/windows/" .. users[i],
    { ["Authorization"] = "Bearer " .. token })
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f per_second=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.2f non_2xx=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status))
end
