import Glibc
import Testing
import VirtFSCore
import VirtFSTestSupport
@testable import VirtFSMount

/// What a read-write mount stores, without the kernel: each guest operation as QEMU stores it
/// in the model (the byte values are the ones virtfs-formats.md records from a real QEMU), the
/// metadata following renames and removals, and QEMU's refusals.
@Suite struct GuestWriteTests {
    static let spec = """
        dir     .        0755 0:0
        dir     d        0750 1000:50
        file    d/f      0640 1000:50  content="data\\n"
        dir     sgid     2775 0:50
        file    x        0644 0:0      xattr.user.comment="hi"
        dir     inherit  0750 0:0      default-acl="u::rwx,u:1000:r-x,g::r-x,m::r-x,o::---"
        """
    static let root = Caller(uid: 0, gid: 0)

    func tree(_ model: SecurityModel, writable: Bool = true) throws -> (TemporaryDirectory, GuestFilesystem) {
        try servedTree(Self.spec, model, explicit: true, writable: writable)
    }

    func p(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// A host xattr of a path below the tree, as hex.
    func hostXattr(_ dir: TemporaryDirectory, _ name: String, _ attribute: String) -> String? {
        let fd = open(dir.path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        guard let value = try? Sys.getXattr(fd, Array(name.utf8), raw: Array(attribute.utf8)) else { return nil }
        let digits = Array("0123456789abcdef")
        return String(value.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    func exists(_ dir: TemporaryDirectory, _ name: String) -> Bool {
        var st = stat()
        return lstat(dir.path + "/" + name, &st) == 0
    }

    @Test("mapped-xattr: mknod, mkdir and symlink store what QEMU stores")
    func mappedXattrCreates() throws {
        let (dir, fs) = try tree(.mappedXattr)
        try fs.mknod(p("/c"), mode: 0o020644, rdev: DeviceNumber(major: 1, minor: 3).glibc, caller: Self.root)
        #expect(hostXattr(dir, "c", "user.virtfs.mode") == "a4210000")
        #expect(hostXattr(dir, "c", "user.virtfs.rdev") == "0301000000000000")
        try fs.symlink(p("target"), at: p("/sl"), caller: Self.root)
        #expect(hostXattr(dir, "sl", "user.virtfs.mode") == "ffa10000")
        #expect(try dir.read("sl") == p("target"))
        try fs.mkdir(p("/n"), mode: 0o755, caller: Caller(uid: 1234, gid: 5678))
        #expect(hostXattr(dir, "n", "user.virtfs.mode") == "ed410000")
        #expect(hostXattr(dir, "n", "user.virtfs.uid") == "d2040000" && hostXattr(dir, "n", "user.virtfs.gid") == "2e160000")
        #expect(hostXattr(dir, "n", "user.virtfs.rdev") == nil)
        // Nothing is left under a temporary name.
        var names: [String] = []
        try fs.list([]) { name, _ in names.append(String(decoding: name, as: UTF8.self)); return true }
        #expect(!names.contains { $0.hasPrefix(".virtfs-tools.") })
    }

    @Test("the toolkit's temporary names cannot be created or renamed to, as the mount removes them as leftovers", arguments: [SecurityModel.mappedXattr, .mappedFile, .passthrough])
    func temporaryNamesRefused(model: SecurityModel) throws {
        let (dir, fs) = try tree(model)
        defer { withExtendedLifetime(dir) {} }
        #expect(failure { try fs.mkdir(p("/.virtfs-tools.1.tmp"), mode: 0o755, caller: Self.root) } == EINVAL)
        #expect(failure { _ = try fs.create(p("/d/.virtfs-tools.1.mount.tmp"), mode: 0o644, flags: O_WRONLY, caller: Self.root) } == EINVAL)
        #expect(failure { try fs.rename(p("/d/f"), to: p("/.virtfs-tools.2.tmp"), flags: 0) } == EINVAL)
        #expect(try fs.view(p("/d/f")).type == .regular)
        // A name merely like them is the guest's.
        try fs.mkdir(p("/.virtfs-tools.1.tmpx"), mode: 0o755, caller: Self.root)
    }

    @Test("mapped-file: mknod writes QEMU's metadata file; a device number it cannot hold is refused")
    func mappedFileCreates() throws {
        let (dir, fs) = try tree(.mappedFile)
        try fs.mknod(p("/d/c"), mode: 0o020644, rdev: DeviceNumber(major: 1, minor: 3).glibc, caller: Self.root)
        #expect(try dir.read("d/.virtfs_metadata/c") == p("virtfs.uid=0\nvirtfs.gid=0\nvirtfs.mode=8612\nvirtfs.rdev=259\n"))
        let big = DeviceNumber(major: 4095, minor: 1_048_575).glibc
        #expect(failure { try fs.mknod(p("/big"), mode: 0o020600, rdev: big, caller: Self.root) } == EOVERFLOW)
        #expect(!exists(dir, "big") && !exists(dir, ".virtfs_metadata/big"))
        #expect(failure { try fs.mkdir(p("/.virtfs_metadata"), mode: 0o755, caller: Self.root) } == EINVAL)
        #expect(failure { _ = try fs.create(p("/d/.virtfs_metadata_root"), mode: 0o644, flags: O_WRONLY, caller: Self.root) } == EINVAL)
    }

    @Test("a set-group-ID directory gives new entries its group, and new directories the bit", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func setGroupID(model: SecurityModel) throws {
        let (dir, fs) = try tree(model)
        defer { withExtendedLifetime(dir) {} }
        close(try fs.create(p("/sgid/f"), mode: 0o644, flags: O_WRONLY, caller: Caller(uid: 7, gid: 8)))
        try fs.mkdir(p("/sgid/d"), mode: 0o755, caller: Caller(uid: 7, gid: 8))
        let f = try fs.view(p("/sgid/f")), d = try fs.view(p("/sgid/d"))
        #expect(f.uid == 7 && f.gid == 50 && f.mode == 0o100644)
        #expect(d.gid == 50 && d.mode == 0o042755)
    }

    @Test("mapped-file: the metadata file follows a rename, a link and an unlink; rmdir takes the directory's metadata directory")
    func mappedFileNames() throws {
        let (dir, fs) = try tree(.mappedFile)
        try fs.rename(p("/d/f"), to: p("/g"), flags: 0)
        #expect(!exists(dir, "d/.virtfs_metadata/f") && exists(dir, ".virtfs_metadata/g"))
        #expect(try fs.view(p("/g")).uid == 1000)
        try fs.link(p("/g"), as: p("/d/h"))
        var a = stat(), b = stat()
        #expect(lstat(dir.path + "/.virtfs_metadata/g", &a) == 0 && lstat(dir.path + "/d/.virtfs_metadata/h", &b) == 0)
        #expect(a.st_ino == b.st_ino && a.st_nlink == 2)
        // A chmod through one name is seen through the other, as the guest sees one inode.
        try fs.chmod(p("/g"), mode: 0o604)
        #expect(try fs.view(p("/d/h")).mode == 0o100604)
        try fs.remove(p("/d/h"), directory: false)
        #expect(!exists(dir, "d/h") && !exists(dir, "d/.virtfs_metadata/h"))
        #expect(failure { try fs.remove(p("/d"), directory: false) } == EISDIR)
        try fs.remove(p("/d"), directory: true)
        #expect(!exists(dir, "d") && !exists(dir, ".virtfs_metadata/d"))
        // A directory renamed over an empty one (whose host directory still holds its
        // .virtfs_metadata) replaces it, as it would for the guest.
        try fs.mkdir(p("/e1"), mode: 0o700, caller: Self.root)
        try fs.mkdir(p("/e2"), mode: 0o755, caller: Caller(uid: 3, gid: 3))
        close(try fs.create(p("/e1/x"), mode: 0o600, flags: O_WRONLY, caller: Self.root))
        try fs.remove(p("/e1/x"), directory: false)
        #expect(exists(dir, "e1/.virtfs_metadata"))
        try fs.rename(p("/e2"), to: p("/e1"), flags: 0)
        #expect(try fs.view(p("/e1")).uid == 3 && !exists(dir, ".virtfs_metadata/e2"))
    }

    @Test("rename: NOREPLACE refuses an existing target; EXCHANGE swaps in mapped-xattr, is EINVAL in mapped-file", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func renameFlags(model: SecurityModel) throws {
        let (dir, fs) = try tree(model)
        defer { withExtendedLifetime(dir) {} }
        #expect(failure { try fs.rename(p("/x"), to: p("/d/f"), flags: 1) } == EEXIST)
        #expect(failure { try fs.rename(p("/x"), to: p("/d/f"), flags: 4) } == EINVAL)
        let result = failure { try fs.rename(p("/x"), to: p("/d/f"), flags: 2) }
        if model == .mappedFile {
            #expect(result == EINVAL)
            #expect(try fs.view(p("/x")).uid == 0 && fs.view(p("/d/f")).uid == 1000)
        } else {
            #expect(result == nil)
            #expect(try fs.view(p("/x")).uid == 1000 && fs.view(p("/d/f")).uid == 0)
        }
    }

    @Test("xattrs: QEMU's refusals; ACLs stored where the model keeps them and reflected in the mode", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func xattrs(model: SecurityModel) throws {
        let (dir, fs) = try tree(model)
        #expect(failure { try fs.setXattr(p("/x"), name: p("trusted.x"), value: [1], flags: 0) } == EOPNOTSUPP)
        #expect(failure { try fs.setXattr(p("/x"), name: p("security.x"), value: [1], flags: 0) } == EOPNOTSUPP)
        let forged = failure { try fs.setXattr(p("/x"), name: p("user.virtfs.uid"), value: [0, 0, 0, 0], flags: 0) }
        #expect(forged == (model == .mappedXattr ? EACCES : nil))
        #expect(failure { try fs.setXattr(p("/x"), name: p("user.comment"), value: [1], flags: 1) } == EEXIST)
        #expect(failure { try fs.setXattr(p("/x"), name: p("user.new"), value: [1], flags: 2) } == ENODATA)
        try fs.setXattr(p("/x"), name: p("user.new"), value: p("v"), flags: 0)
        #expect(try fs.xattrs(p("/x")).contains(Xattr("user.new", p("v"))))
        try fs.removeXattr(p("/x"), name: p("user.new"))
        #expect(failure { try fs.removeXattr(p("/x"), name: p("user.new")) } == ENODATA)
        let acl = try ACL(text: "u::rw-,u:7:rwx,g::r--,m::rwx,o::---")
        try fs.setXattr(p("/x"), name: p("system.posix_acl_access"), value: acl.xattrValue, flags: 0)
        #expect(try fs.view(p("/x")).mode == 0o100670)
        let stored = model == .mappedXattr ? "user.virtfs.system.posix_acl_access" : "system.posix_acl_access"
        #expect(hostXattr(dir, "x", stored) != nil)
        try fs.chmod(p("/x"), mode: 0o640)
        #expect(try fs.view(p("/x")).attributes.accessACL == ACL(text: "u::rw-,u:7:rwx,g::r--,m::r--,o::---"))
        // An ACL the mode says in full is the mode alone.
        try fs.setXattr(p("/x"), name: p("system.posix_acl_access"), value: ACL(mode: 0o604).xattrValue, flags: 0)
        #expect(try fs.view(p("/x")).attributes.accessACL == nil && fs.view(p("/x")).mode == 0o100604)
        #expect(failure { try fs.setXattr(p("/x"), name: p("system.posix_acl_default"), value: acl.xattrValue, flags: 0) } == EACCES)
        // QEMU's mapped ACL removal succeeds when there is none (9p-posix-acl.c).
        #expect(failure { try fs.removeXattr(p("/x"), name: p("system.posix_acl_access")) } == nil)
        #expect(failure { try fs.removeXattr(p("/x"), name: p("trusted.x")) } == EOPNOTSUPP)
    }

    @Test("a default ACL is inherited in place of the umask, as the kernel's posix_acl_create gives it", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func inheritedACL(model: SecurityModel) throws {
        let (dir, fs) = try tree(model)
        defer { withExtendedLifetime(dir) {} }
        let caller = Caller(uid: 0, gid: 0, umask: 0o022)
        close(try fs.create(p("/inherit/f"), mode: 0o666, flags: O_WRONLY, caller: caller))
        let f = try fs.view(p("/inherit/f"))
        let expected = try ACL(text: "u::rw-,u:1000:r-x,g::r-x,m::r--,o::---")
        #expect(f.mode == 0o100640 && f.attributes.accessACL == expected)
        #expect(f.attributes.defaultACL == nil)
        try fs.mkdir(p("/inherit/d"), mode: 0o777, caller: caller)
        let d = try fs.view(p("/inherit/d"))
        let inherited = try ACL(text: "u::rwx,u:1000:r-x,g::r-x,m::r-x,o::---")
        #expect(d.mode == 0o040750 && d.attributes.defaultACL == inherited && d.attributes.accessACL == inherited)
        close(try fs.create(p("/plain"), mode: 0o666, flags: O_WRONLY, caller: caller))
        #expect(try fs.view(p("/plain")).mode == 0o100644 && fs.view(p("/plain")).attributes.accessACL == nil)
    }

    @Test("a read-only mount refuses every write with EROFS and takes no lock")
    func readOnly() throws {
        let (dir, fs) = try tree(.mappedXattr, writable: false)
        #expect(failure { try fs.mkdir(p("/n"), mode: 0o755, caller: Self.root) } == EROFS)
        #expect(failure { _ = try fs.open(p("/x"), flags: O_WRONLY) } == EROFS)
        #expect(failure { try fs.chmod(p("/x"), mode: 0o600) } == EROFS)
        #expect(!exists(dir, "n"))
        // A writing mount of the same tree can still start; a second one cannot.
        let writer = try GuestFilesystem(tree: dir.bytes, model: nil, writable: true)
        #expect(throws: VirtFSError.self) { _ = try GuestFilesystem(tree: dir.bytes, model: nil, writable: true) }
        withExtendedLifetime(writer) {}
    }
}
