# model: mapped-file
# expect: metadata-links
# A host-side hard link of the data only: the two names disagree about their owner.
mk
ln "$T/home/alice/a" "$T/home/alice/b"
printf 'virtfs.uid=0\nvirtfs.gid=0\nvirtfs.mode=33188\n' >"$T/home/alice/.virtfs_metadata/b"
chown 65534:65534 "$T/home/alice/.virtfs_metadata/b"
