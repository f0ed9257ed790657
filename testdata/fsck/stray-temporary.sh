# model: mapped-xattr
# expect: stray-temporary
# A temporary file of an interrupted virtfs-tools run.
mk
printf 'half\n' >"$T/etc/.virtfs-tools.4242.tmp"
chown 65534:65534 "$T/etc/.virtfs-tools.4242.tmp"
