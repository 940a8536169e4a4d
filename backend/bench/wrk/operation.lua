-- Drives one operation: the runner defines METHOD, PREFIX, IDS, SUFFIX, BODY and TOKEN above this line.
local headers = { ["Authorization"] = "Bearer " .. TOKEN, ["Content-Type"] = "application/json" }

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local path = PREFIX
  if #IDS > 0 then
    path = path .. "/" .. IDS[math.random(#IDS)] .. SUFFIX
  end
  return wrk.format(METHOD, path, headers, BODY)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.connect + errors.read + errors.write + errors.timeout,
    errors.status, latency:percentile(50), latency:percentile(99)))
end
