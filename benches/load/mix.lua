-- wrk script: the mixed load of benches/load/run.sh. Half the requests read /stats, a quarter
-- add a 64 KiB slab, a quarter release 80 KiB (oldest slabs first). Releases outweigh adds,
-- so the live heap stays small and a 64 MiB group is never OOM-killed by the mix itself.
local paths = { "/stats", "/stats", "/add?bytes=65536", "/rel?bytes=81920" }

request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
