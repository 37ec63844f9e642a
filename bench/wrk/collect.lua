-- POST /collect as t.js sends it (text/plain: no preflight): 326-byte pageviews, one per
-- request, or N per request as a batch with `wrk ... -s collect.lua URL -- N`.
-- 1024 prebuilt requests with different visitors rotate, so the load spreads over the
-- buffer's shards as real traffic does, at no per-request cost in wrk.
local per_request = 1
local template = '{"type":"pageview","site":"example.com","anonymous_id":"visitor-%08d","event_id":"0d6f7a3e-5a0b-4c1e-9c43-%012d","url":"https://example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring","referrer":"https://www.google.com/","props":{"plan":"pro"}}'

local requests = {}
local n = 0
init = function(args)
  per_request = tonumber(args[1] or "1")
  local headers = {
    ["Content-Type"] = "text/plain;charset=UTF-8",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36",
  }
  for i = 1, 1024 do
    local sigs = {}
    for j = 1, per_request do
      local k = i * per_request + j
      sigs[j] = string.format(template, k % 100000, k)
    end
    local body = sigs[1]
    if per_request > 1 then body = "[" .. table.concat(sigs, ",") .. "]" end
    requests[i] = wrk.format("POST", "/collect", headers, body)
  end
end
request = function()
  n = n % 1024 + 1
  return requests[n]
end
done = function(summary, latency, requests)
  io.write(string.format("non-202 answers: %d\n", summary.errors.status))
end
