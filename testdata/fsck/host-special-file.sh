# model: mapped-file
# expect: host-special
# A host symlink in a mapped-file export.
mk
ln -s ../bin/sh "$T/etc/shell"
chown -h 65534:65534 "$T/etc/shell"
