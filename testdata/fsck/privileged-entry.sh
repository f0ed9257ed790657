# model: passthrough
# expect: privileged-entry
# repairs: none (a warning: such a tree may be intended)
# A set-user-ID root file and a device node in a tree QEMU serves as real host files.
mk
chmod 4755 "$T/bin/sh"
