# What tests/qemu/virtiofs has a guest's overlay over virtio-fs do, and the host repeat on its own
# overlay of the same layers: copy-ups, whiteouts, a deleted and re-created directory, new
# entries of every type, renames. Run in the merged directory with a try() that logs each one.
virtiofs_ops() {
    try sh -c 'echo guest >>etc/hostname'       # copy-up (etc is already in the upper layer)
    try sh -c 'echo more >>home/alice/notes'    # copy-up in directories only the lower has
    try chmod 0600 usr/lib/libx.so              # metadata copy-up
    try chown 7:8 var/cache/c
    try rm README                               # whiteouts
    try rm usr/lib/libx.so
    try rm var/log/old.log
    try rm -r bin                               # a deleted and re-created directory: opaque
    try mkdir bin
    try sh -c 'echo new >bin/tool2'
    try mkdir emptydir                          # re-created where the host overlay deleted it
    try mkdir -p made/sub
    try sh -c 'echo made >made/sub/file'
    try ln -s ../etc/passwd made/link
    try mknod made/tty c 4 1
    try mkfifo made/fifo
    try chown 1234:5678 made/sub/file
    try chmod 4750 made/sub/file
    try mv etc/passwd etc/passwd.old            # renames: a copied-up file, a lower file, a new dir
    try mv home/alice/notes home/notes
    try mv made/sub made/sub2
    try setfattr -n user.guest -v made made/sub2/file
}
