-- wrk script for scripts/load.sh: each request carries the next token of TOKENS_FILE (one
-- token a line), round robin. The requests are formatted once, at start, so that wrk's own
-- cost per request stays that of a fixed request.
local path = os.getenv("TOKENS_FILE")
local requests = {}

function init(args)
  for token in io.lines(path) do
    if token ~= "" then
      requests[#requests + 1] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
    end
  end
  assert(#requests > 0, "no tokens in " .. tostring(path))
end

local i = 0

function request()
  i = i % #requests + 1
  return requests[i]
end
