# The guest half of tests/qemu/overlay (after overlay-list.sh). The export holds three layer
# sets, each lower/ upper/ work/ on the 9p share (mapped-xattr):
#   h2g: layers made on the host by kernel overlayfs, converted by virtfs-overlay --xattrs user;
#   ctl: the same minus the user.overlay.impure marks virtfs-overlay added (the control);
#   g2h: the converted lower and an empty upper the guest writes to.
# Everything goes to /scn/out for the host to compare.
O=/scn/out
mkdir -p /merged
try() { if "$@" 2>>$O/ops.err; then echo "ok $*" >>$O/ops.log; else echo "failed($?) $*" >>$O/ops.log; fi; }
for set in h2g ctl; do
    if mount -t overlay overlay -o userxattr,lowerdir=/mnt/$set/lower,upperdir=/mnt/$set/upper,workdir=/mnt/$set/work /merged 2>$O/$set.mount.err; then
        ovl_list /merged >$O/$set.list 2>$O/$set.list.err
        ls -A /merged /merged/var/cache >$O/$set.ls 2>&1
        umount /merged
    else
        echo "mount failed" >$O/$set.list
    fi
done
# The host-made upper as a second lower layer (read-only mount): what --check says about
# whiteouts in lower layers over 9p.
if mount -t overlay overlay -o userxattr,lowerdir=/mnt/h2g/upper:/mnt/h2g/lower /merged 2>$O/lowers.mount.err; then
    ovl_list /merged >$O/lowers.list 2>/dev/null
    umount /merged
else
    echo "mount failed" >$O/lowers.list
fi
# Guest -> host: a userxattr overlay whose upper layer is on 9p.
if mount -t overlay overlay -o userxattr,lowerdir=/mnt/g2h/lower,upperdir=/mnt/g2h/upper,workdir=/mnt/g2h/work /merged 2>$O/g2h.mount.err; then
    cd /merged
    umask 022
    try rm README
    try rm lib
    try rmdir emptydir
    try rm -r gone
    try mkdir newdir
    try sh -c 'echo "made in the guest" >newdir/file'
    try ln -s ../etc/passwd newdir/link
    try mknod newdir/tty c 4 1
    try mknod newdir/disk b 8 0
    try mkfifo newdir/fifo
    try chown 1234:5678 newdir/file
    try chown -h 7:8 newdir/link
    try chmod 4750 newdir/file
    try mkdir -p newdir/deep/er
    try chown -R 1000:1000 newdir/deep
    try sh -c 'echo top >toplevel.txt'
    try chmod 0600 toplevel.txt
    # The limits --check predicts for an upper layer on 9p: copy-up, and re-creating a deleted directory.
    try sh -c 'echo more >>var/log/old.log'
    try rm etc/hostname
    try mkdir emptydir
    cd /
    ovl_list /merged >$O/g2h.list 2>$O/g2h.list.err
    umount /merged
else
    echo "mount failed" >$O/g2h.list
fi
sync
echo done
