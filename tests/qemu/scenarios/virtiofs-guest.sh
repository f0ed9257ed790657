# The guest half of tests/qemu/virtiofs (after overlay-list.sh and virtiofs-ops.sh). /mnt is the virtio-fs export
# (virtiofsd, xattrmap :map:trusted.:user.virtiofs.:) holding lower/ upper/ work/: layers a host
# overlay made, converted by virtfs-overlay --xattrs virtiofs. A 9p share (tag glue) is listed first. The guest mounts an ordinary
# overlay (trusted xattrs, no userxattr) over them, lists it, writes to it, lists it again.
# Everything goes to /scn/out for the host to compare.
O=/scn/out
mkdir -p /merged
try() { if "$@" 2>>$O/ops.err; then echo "ok $*" >>$O/ops.log; else echo "failed($?) $*" >>$O/ops.log; fi; }
grep ' /mnt ' /proc/mounts >$O/mounts
# The 9p share QEMU was given exactly as virtfs-qemu options printed it (tag glue).
mkdir -p /glue
if mount -t 9p -o trans=virtio,version=9p2000.L,cache=none glue /glue 2>$O/glue.err; then
    (cd /glue && stat -c '%n|%u|%g|%a|%F' hello sl && readlink sl && cat hello) >$O/glue.stat 2>>$O/glue.err
    umount /glue
fi
if ! mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/upper,workdir=/mnt/work /merged 2>$O/mount.err; then
    echo "mount failed" >$O/before.list
    exit 1
fi
grep ' /merged ' /proc/mounts >>$O/mounts
ovl_list /merged >$O/before.list 2>$O/before.err
getfattr -h -n user.note --only-values /merged/etc/hostname >$O/user-xattr 2>$O/xattr.err
getfattr -h -d -m - /mnt/upper/redo >$O/opaque-xattr 2>>$O/xattr.err
cd /merged
umask 022
virtiofs_ops   # virtiofs-ops.sh, which the host repeats on its own overlay
cd /
ovl_list /merged >$O/after.list 2>$O/after.err
umount /merged
# The guest's own overlay xattrs as it sees them on the upper layer.
getfattr -R -h -d -m trusted.overlay -e hex /mnt/upper >$O/upper.xattrs 2>/dev/null
sync
echo done
