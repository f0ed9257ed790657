# model: mapped-xattr
# expect: mode-type
# A mode with no file type bits, and a directory mode on a host regular file.
mk
x -n user.virtfs.mode -v 0xa4010000 "$T/etc/group"
x -n user.virtfs.mode -v 0xed410000 "$T/bin/sh"
