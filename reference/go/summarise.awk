# SPDX-License-Identifier: MIT OR Apache-2.0
# Summarises measure.sh / grid.sh output per cell: awk -f summarise.awk results/grid-go1.19.txt
# Per cell: outcome counts, spike HeapAlloc, NextGC after the spike (min-max), cgroup peak (min-max),
# the first collection after the spike as gctrace printed it (start->end->live/goal MiB, times seen), last phase printed.
/^run / { for(i=3;i<=NF;i++){ split($i,a,"="); v[a[1]]=a[2] }
  ng=v["spike_NextGC"]; mu=v["max_usage"];
  if(ng!=""){ if(nmin==""||ng<nmin)nmin=ng; if(nmax==""||ng>nmax)nmax=ng }
  if(mmin==""||mu<mmin)mmin=mu; if(mmax==""||mu>mmax)mmax=mu;
  g[v["after_spike_gc"]]++; lp[v["last_phase"]]++; if (v["spike_HeapAlloc"] != "") ha=v["spike_HeapAlloc"]; next }
/^cell:/ { sub(/GODEBUG=gctrace=1 /,""); sub(/^cell: memspike-ref-/,""); print;
  gs=""; for(k in g) gs=gs k "x" g[k] " "; ls=""; for(k in lp) ls=ls k "x" lp[k] " ";
  printf "    spike HeapAlloc %s MiB; NextGC after spike %s-%s B (%.1f MiB); peak %.2f-%.2f MiB; first gc after spike (MB, gctrace): %s; last phase: %s\n", (ha == "" ? "none (died in the spike)" : sprintf("%.1f", ha/1048576)), nmin, nmax, nmax/1048576, mmin/1048576, mmax/1048576, gs, ls;
  delete g; delete lp; nmin=nmax=mmin=mmax=ha="" }
