# model: mapped-xattr
# expect: no-metadata
# options: --adopt-from-parent
# A file copied in on the host: the guest would see the host owner.
mk
printf 'copied\n' >"$T/home/alice/copied"
chown 65534:65534 "$T/home/alice/copied"
