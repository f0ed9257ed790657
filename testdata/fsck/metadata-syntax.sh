# model: mapped-file
# expect: metadata-syntax
# Hand-edited metadata: spaces, a trailing comment, a duplicate and an unknown line.
mk
printf 'virtfs.uid= 0\nvirtfs.gid=0 # root\nvirtfs.mode=33261\nvirtfs.mode=33261\ncolor=blue\n' >"$T/bin/.virtfs_metadata/sh"
