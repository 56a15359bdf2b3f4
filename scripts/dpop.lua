-- wrk script for scripts/load-dpop.sh: each request carries TOKEN (scheme DPoP) and the next
-- proof of PROOFS_FILE (one a line, each with its own jti: a replayed proof is refused), in
-- order. The requests are formatted once, at start. When the proofs run out, the last one
-- is sent again: the server refuses it (a replay), which wrk counts as non-2xx, so a run
-- that needed more proofs than it had shows it.
local path = os.getenv("PROOFS_FILE")
local token = os.getenv("TOKEN")
local requests = {}

function init(args)
  for proof in io.lines(path) do
    if proof ~= "" then
      requests[#requests + 1] = wrk.format(nil, nil, {
        ["Authorization"] = "DPoP " .. token,
        ["DPoP"] = proof,
      })
    end
  end
  assert(#requests > 0, "no proofs in " .. tostring(path))
end

local i = 0

function request()
  if i < #requests then i = i + 1 end
  return requests[i]
end
