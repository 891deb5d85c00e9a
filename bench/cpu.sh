# CPU accounting for the bench scripts (sourced, with the PG* settings exported), in clock
# ticks (1/100 s): a process's own user + system time, and the whole Postgres cluster's (the
# postmaster with every child it has reaped, plus its live children).
TICK_MS=$((1000 / $(getconf CLK_TCK)))
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
POSTMASTER="$(head -1 "$(psql -d postgres -qAt -c 'SHOW data_directory')/postmaster.pid" 2>/dev/null || pgrep -o -x postgres)"
pg_ticks() {
  local total child
  total="$(awk '{print $14 + $15 + $16 + $17}' "/proc/$POSTMASTER/stat")"
  for child in $(pgrep -P "$POSTMASTER"); do
    total=$((total + $(proc_ticks "$child")))
  done
  echo "$total"
}
