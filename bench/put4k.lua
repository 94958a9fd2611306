-- PUT a new 4 KiB file per request (/w<counter>.bin): what many small uploads cost.
local counter = 0
wrk.method = "PUT"
wrk.body = string.rep("x", 4096)

request = function()
  counter = counter + 1
  return wrk.format(nil, "/w" .. counter .. ".bin")
end

response = function(status)
  if status ~= 201 and status ~= 204 then
    error("PUT answered " .. status)
  end
end
