# model: mapped-file
# expect: metadata-object no-metadata
# options: --adopt-owner 0:0
# A symlink where a metadata file belongs (QEMU opens metadata with O_NOFOLLOW and ignores it).
# Removing it leaves the entry bare, owned like the tree's own entries: without --adopt-owner
# the next check reports it as metadata-lost, an error (the owner it had is gone).
mk
rm "$T/etc/.virtfs_metadata/group"
ln -s passwd "$T/etc/.virtfs_metadata/group"
