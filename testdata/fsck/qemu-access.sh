# model: mapped-xattr
# expect: qemu-access no-metadata
# options: --qemu-user 65534
# A host-side chown -R root:root: QEMU, running as nobody, can no longer open anything.
mk
printf 'x\n' >"$T/hostfile"
chown -R root:root "$T"
