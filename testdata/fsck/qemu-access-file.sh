# model: mapped-file
# expect: qemu-access
# options: --qemu-user 65534
# The same in mapped-file, where the metadata files and directories are locked out too.
mk
chown -R root:root "$T"
