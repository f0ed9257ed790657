# Appended to every scenario: the guest's own view of the export, written to /scn/out for
# tests/qemu/oracle to compare with virtfs-stat on the host. Names go out NUL-separated to the
# scenario share, so that any byte survives; every listing follows the same `find .` order.
cd /mnt
FMT='%n|%u|%g|%f|%t|%T|%s|%b|%h|%Y|%Z'
find . -print0 >/scn/out/paths.nul
find . -exec stat -c "$FMT" {} + >/scn/out/stat.txt
# ACLs and xattrs cost two round trips per entry, and every pass over a big tree costs minutes
# under TCG: NO_ACL_LISTING=1 leaves them, and what only the smaller suites read, out.
if [ -z "${NO_ACL_LISTING:-}" ]; then
    find . -exec stat -c "%u %g %f %t %T %s" {} + >/scn/out/fields.txt
    find . ! -type l -print0 >/scn/out/nonlinks.nul
    find . ! -type l -exec getfacl -n {} + >/scn/out/acl.txt 2>/scn/out/acl.err
    find . ! -type l -exec getfattr -d -e hex {} + >/scn/out/xattr.txt 2>/scn/out/xattr.err
fi
# Each symlink: its name, then the target readlink returns or FAIL (a host symlink in a
# mapped export cannot be read by QEMU < 11).
find . -type l -exec sh -c 'for p; do printf "%s" "$p" | od -An -tx1 | tr -d " \n"; printf " "
    if t=$(readlink "$p"); then printf "%s" "$t" | od -An -tx1 | tr -d " \n"; echo; else echo FAIL; fi; done' _ {} + >/scn/out/links.txt
echo listed
