# Ownership and mode changes, run by tests/qemu/edit twice: inside a booted guest with the real
# coreutils chown and chmod, and on the host with chown/chmod standing for virtfs-chown and
# virtfs-chmod. The two results must be the same guest view. MODEL is set by tests/qemu/edit.
chown -h 1000:50 f sl
chown -h 7:7 "with space" "$(printf 'new\nline')" "$(printf 'bad\377utf8')"
chown :50 hard1
chown 0:0 suid both
chmod g+w,o-r f
chmod u+s,g-x sgid
chmod 2755 shared
chmod 755 tmp
chmod -R a=rX home
chmod 0640 acl-file
chmod g-w,o+t acl-dir
# QEMU 7.2 cannot chmod a device node in passthrough and none (ENXIO in the guest).
case $MODEL in mapped-*) chmod 600 dev/null ;; esac
chown -R 1000:1000 home/alice
chmod -R go-rwx etc
chown 1234 .
chmod 0750 .
