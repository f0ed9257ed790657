# model: mapped-xattr
# expect: xattr-length
# A 3-byte uid (QEMU reads undefined high bytes) and a 5-byte mode (QEMU ignores it).
mk
x -n user.virtfs.uid -v 0x010203 "$T/bin/sh"
x -n user.virtfs.mode -v 0xa481000000 "$T/etc/passwd"
