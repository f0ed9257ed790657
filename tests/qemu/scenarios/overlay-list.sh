# ovl_list DIR: the merged view of an overlay, one line per entry, the same on the host (GNU
# tools) and in the guest (busybox): path|uid|gid|raw mode|major|minor|size and md5 for files,
# target for symlinks. A whiteout that readdir shows but lookup cannot find (a "phantom") makes
# find or stat fail: such errors become "!error" lines, so they count as differences.
ovl_list() {
    ( cd "$1" || exit 1
      { find . 2>&1 >&3 | sed 's/^/!error /' >&3; } 3>&1 | LC_ALL=C sort | while IFS= read -r p; do
          case $p in '!error '*) echo "$p"; continue ;; esac
          if ! s=$(stat -c '%u|%g|%f|%t|%T' "$p" 2>/dev/null); then echo "!error $p: stat failed"; continue; fi
          if [ -L "$p" ]; then x="link:$(readlink "$p")"
          elif [ -f "$p" ]; then x="$(stat -c %s "$p")|$(md5sum <"$p" | cut -d' ' -f1)"
          else x=""; fi
          echo "$p|$s|$x"
      done )
}
