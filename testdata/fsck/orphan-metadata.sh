# model: mapped-file
# expect: orphan-metadata
# Metadata left behind by a host-side rm: the guest cannot remove the directory.
mk
printf 'virtfs.uid=0\nvirtfs.gid=0\nvirtfs.mode=33188\n' >"$T/etc/.virtfs_metadata/gone"
