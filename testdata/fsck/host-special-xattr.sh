# model: mapped-xattr
# expect: host-special
# A host symlink, fifo and device node in a mapped-xattr export (e.g. after cp -a as root).
mk
ln -s sh "$T/bin/hostlink"
mkfifo "$T/fifo"
mknod "$T/dev/zero" c 1 5
chown -h 65534:65534 "$T/bin/hostlink" "$T/fifo" "$T/dev/zero"
