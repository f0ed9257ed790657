# model: mapped-xattr
# expect: bad-acl
# An ACL blob with an unknown tag.
mk
x -n user.virtfs.system.posix_acl_access -v 0x0200000040000700ffffffff "$T/etc/passwd"
