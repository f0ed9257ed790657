# model: passthrough
# expect: untrusted-xattr privileged-entry
# repairs: none (warnings: the guest wrote them; what to do is the user's call)
# A passthrough guest can set user.virtfs.*; served as mapped-xattr, it would become the owner.
mk
x -n user.virtfs.uid -v 0x00000000 "$T/home/alice/a"
