# model: mapped-file
# expect: metadata-object no-metadata
# A symlink where a metadata file belongs (QEMU opens metadata with O_NOFOLLOW and ignores it).
mk
rm "$T/etc/.virtfs_metadata/group"
ln -s passwd "$T/etc/.virtfs_metadata/group"
