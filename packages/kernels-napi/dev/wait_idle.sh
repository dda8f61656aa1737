#!/usr/bin/env bash
# Block until the machine has been idle (> 90% idle CPU) for 3 consecutive seconds,
# or 300 s have passed. Benchmarks on this shared 2-core box are noise otherwise.
idle_pct() {
  read -r _ u n s i w q sq st _ < /proc/stat; local t1=$((u+n+s+i+w+q+sq+st)) i1=$i
  sleep 1
  read -r _ u n s i w q sq st _ < /proc/stat; local t2=$((u+n+s+i+w+q+sq+st)) i2=$i
  echo $(( 100 * (i2 - i1) / (t2 - t1) ))
}
ok=0; for _ in $(seq 300); do
  if [ "$(idle_pct)" -ge 90 ]; then ok=$((ok+1)); else ok=0; fi
  [ $ok -ge 3 ] && exit 0
done
echo "wait_idle: machine still busy after 300 s" >&2
