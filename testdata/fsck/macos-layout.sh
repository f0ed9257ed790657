# model: mapped-xattr
# expect: macos-layout
# A tree written by QEMU on a macOS host: 2-byte mode, 4-byte Darwin rdev.
mk
x -n user.virtfs.mode -v 0xb621 "$T/dev/null"
x -n user.virtfs.rdev -v 0x03000001 "$T/dev/null"
