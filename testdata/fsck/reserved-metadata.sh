# model: mapped-file
# expect: reserved-metadata
# Metadata for the metadata directory itself.
mk
printf 'virtfs.uid=0\n' >"$T/etc/.virtfs_metadata/.virtfs_metadata"
