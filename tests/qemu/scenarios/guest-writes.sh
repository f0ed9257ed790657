# The guest makes one of everything through QEMU; tests/qemu/oracle then checks that
# virtfs-stat on the host prints exactly what the guest's own tools print for every entry.
# MODEL is set by the oracle. Operations a model refuses (mknod in passthrough/none, chown as
# an unprivileged QEMU in none, ACLs in none) fail here and are simply not there to compare.
cd /mnt
umask 022
try() { "$@" 2>>/scn/out/ops.err || echo "refused: $*" >>/scn/out/ops.err; }
echo hello >data
try mkdir d
try touch f plain
try mknod cdev c 1 3
try mknod bdev b 8 0
try mknod bigdev c 4094 1048574
try mkfifo fifo
try ln -s data sl
try ln -s /no/such/target dangling
try chown 1234:5678 f
try chmod 4755 f
try touch sgid; try chmod 2644 sgid
try mkdir sgiddir; try chmod 2775 sgiddir
try mkdir tmp; try chmod 1777 tmp
try mkdir -p deep/a/b/c/d/e; try touch deep/a/b/c/d/e/leaf
try ln data hard1; try ln data deep/hard2
try touch "with space" "$(printf 'new\nline')" "$(printf 'bad\377utf8')" 'back\slash'
try touch aclfile; [ -n "${NOACL:-}" ] || try setfacl -m u:1000:rx,g:50:r aclfile
try mkdir acldir; [ -n "${NOACL:-}" ] || { try setfacl -m u:1000:rwx acldir; try setfacl -d -m u:1000:rx,g::rx acldir; }
try setfattr -n user.comment -v "hello world" data
try setfattr -n user.bin -v 0x00fe01ff data
try chown -h 3:4 sl
try chown 100:101 d
try chmod 0700 d
try chown 7:8 .
try chmod 0751 .
