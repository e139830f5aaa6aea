#!/usr/bin/env bash
# The linker rustc calls for capsa's target (.cargo/config.toml): cc, plus,
# for optimised builds of the capsa binary, an lld --symbol-ordering-file
# made from symbol-order.txt that lays the functions capsa runs in its
# common commands side by side (see scripts/symbol-order.sh for why).
#
# symbol-order.txt holds symbol names as nm prints them. Their hashes (legacy
# `17h<hash>E`, v0 crate disambiguators `Cs<id>_`, LLVM's `.<n>` suffixes)
# change with any rustc, dependency or code change: a name not found as is
# here stands for every function whose name matches it but for the hashes
# (all instances of a generic, at worst), so the file keeps working as the
# code changes; an entry that matches nothing is left out. Anything
# unexpected falls back to a plain link.
set -u
here=$(cd "$(dirname "$0")" && pwd)
order=$here/../symbol-order.txt

out=
objs=()
scan() {
  local prev=
  for a in "$@"; do
    case $a in
      *.o) objs+=("$a") ;;
    esac
    if [ "$prev" = -o ]; then out=$a; fi
    prev=$a
  done
}
scan "$@"
for a in "$@"; do
  # rustc passes long command lines in a response file.
  if [ "${a#@}" != "$a" ] && [ -f "${a#@}" ]; then
    mapfile -t more < "${a#@}"
    scan "${more[@]}"
  fi
done

case $out in
  */release/deps/capsa-*) ;;
  *) exec cc "$@" ;;
esac
[ -f "$order" ] && [ ${#objs[@]} -gt 0 ] && command -v nm >/dev/null || exec cc "$@"

file=$out.symbol-order
# nm prints "ADDR TYPE NAME" for the defined symbols of the objects; emit,
# in symbol-order.txt's order, each entry found as is, else the functions
# whose normalised names match its normalised name.
nm --defined-only "${objs[@]}" 2>/dev/null | awk '
  function norm(k) {
    sub(/17h[0-9a-f]+E$/, "E", k)
    gsub(/Cs[0-9A-Za-z]+_/, "C", k)
    sub(/\.[0-9]+$/, "", k)
    return k
  }
  NR == FNR { want[++n] = $0; next }
  $2 ~ /^[tTwW]$/ { exact[$3] = 1; like[norm($3)] = like[norm($3)] " " $3 }
  END {
    for (i = 1; i <= n; i++) {
      w = want[i]
      if (w in exact) { print w; continue }
      k = norm(w)
      if (k in like) { m = split(like[k], list, " "); for (j = 1; j <= m; j++) print list[j] }
      else print w  # C symbols (glibc) are not in these objects
    }
  }' "$order" - > "$file" || exec cc "$@"
exec cc "$@" "-Wl,--symbol-ordering-file=$file,--no-warn-symbol-ordering"
