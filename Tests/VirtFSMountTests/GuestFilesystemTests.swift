import Glibc
import Testing
import VirtFSCore
import VirtFSTestSupport
@testable import VirtFSMount

/// What a mount answers, without the kernel: path resolution that cannot leave the tree, the
/// model's metadata hidden, guest ACLs as kernel xattrs, and the options given to libfuse.
@Suite struct GuestFilesystemTests {
    static let spec = """
        dir     .        0755 0:0
        dir     d        0750 1000:50
        file    d/f      0640 1000:50  content="data\\n"
        symlink sl       0777 0:0      target="d/f"
        char    null     0666 0:0      rdev=1:3
        dir     acl-dir  0770 0:0      acl="u::rwx,u:1000:rwx,g::rwx,m::rwx,o::---" default-acl="u::rwx,g::r-x,o::---"
        file    x        0644 0:0      xattr.user.comment="hi"
        """

    func tree(_ model: SecurityModel) throws -> (TemporaryDirectory, GuestFilesystem) {
        try servedTree(Self.spec, model)
    }

    @Test("the guest's type, mode, owners and device, and a mapped symlink's target", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func guestView(model: SecurityModel) throws {
        let (dir, fs) = try tree(model)
        defer { withExtendedLifetime(dir) {} }
        #expect(fs.model == model)
        let null = try fs.view(Array("/null".utf8))
        #expect(null.mode == 0o020666 && null.attributes.rdev == DeviceNumber(major: 1, minor: 3))
        let f = try fs.view(Array("/d/f".utf8))
        #expect(f.mode == 0o100640 && f.uid == 1000 && f.gid == 50)
        #expect(try fs.target(Array("/sl".utf8)) == Array("d/f".utf8))
        #expect(failure { _ = try fs.target(Array("/d/f".utf8)) } == EINVAL)
    }

    @Test("xattrs are the guest's user xattrs and its ACLs as system.posix_acl_*, never user.virtfs.*", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func xattrs(model: SecurityModel) throws {
        let (dir, fs) = try tree(model)
        defer { withExtendedLifetime(dir) {} }
        let names = try fs.xattrs(Array("/acl-dir".utf8)).map { String(decoding: $0.name, as: UTF8.self) }
        #expect(names.sorted() == ["system.posix_acl_access", "system.posix_acl_default"])
        let access = try fs.xattrs(Array("/acl-dir".utf8)).first { $0.name == Array("system.posix_acl_access".utf8) }!
        #expect(try ACL(xattr: access.value) == ACL(text: "u::rwx,u:1000:rwx,g::rwx,m::rwx,o::---"))
        #expect(try fs.xattrs(Array("/x".utf8)) == [Xattr("user.comment", Array("hi".utf8))])
    }

    @Test("mapped-file: the metadata is neither listed nor reachable by name")
    func hiddenMetadata() throws {
        let (dir, fs) = try tree(.mappedFile)
        defer { withExtendedLifetime(dir) {} }
        var names: [String] = []
        try fs.list([]) { name, view in
            #expect(view != nil)
            names.append(String(decoding: name, as: UTF8.self))
            return true
        }
        #expect(names.sorted() == ["acl-dir", "d", "null", "sl", "x"])
        #expect(failure { _ = try fs.view(Array("/.virtfs_metadata".utf8)) } == ENOENT)
        #expect(failure { _ = try fs.view(Array("/.virtfs_metadata_root".utf8)) } == ENOENT)
        #expect(failure { _ = try fs.view(Array("/d/.virtfs_metadata/f".utf8)) } == ENOENT)
    }

    @Test("a symlink of the tree is never followed on the way to an entry, nor '..'")
    func noEscape() throws {
        let (dir, fs) = try tree(.mappedXattr)
        let outside = TemporaryDirectory()
        defer { withExtendedLifetime(outside) {} }
        #expect(open(outside.path + "/secret", O_CREAT | O_WRONLY, 0o600) >= 0)
        #expect(symlink(outside.path, dir.path + "/escape") == 0)
        #expect(failure { _ = try fs.view(Array("/escape/secret".utf8)) } == ENOTDIR)
        #expect(failure { _ = try fs.openForReading(Array("/escape/secret".utf8)) } == ENOTDIR)
        #expect(failure { _ = try fs.openForReading(Array("/escape".utf8)) } == EACCES)
        #expect(failure { _ = try fs.list(Array("/escape".utf8)) { _, _ in true } } == ENOTDIR)
        #expect(failure { _ = try fs.view(Array("/d/../d/f".utf8)) } == EINVAL)
        let fd = try fs.openForReading(Array("/d/f".utf8))
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(read(fd, &buffer, 16) == 5 && Array(buffer.prefix(5)) == Array("data\n".utf8))
    }

    @Test("a directory walked before and then moved out of the tree by the host, a symlink to it in its place, is not reached")
    func keptDirectoryMovedOut() throws {
        let (dir, fs) = try tree(.mappedXattr)
        let outside = TemporaryDirectory()
        defer { withExtendedLifetime(outside) {} }
        #expect(try fs.view(Array("/d/f".utf8)).type == .regular)
        #expect(fs.directories.count == 1)
        #expect(rename(dir.path + "/d", outside.path + "/d") == 0)
        #expect(symlink(outside.path + "/d", dir.path + "/d") == 0)
        #expect(failure { _ = try fs.view(Array("/d/f".utf8)) } == ENOTDIR)
        #expect(failure { _ = try fs.openForReading(Array("/d/f".utf8)) } == ENOTDIR)
        #expect(failure { _ = try fs.list(Array("/d".utf8)) { _, _ in true } } == ENOTDIR)
        // Put back, it is the same directory at the same place again.
        #expect(unlink(dir.path + "/d") == 0 && rename(outside.path + "/d", dir.path + "/d") == 0)
        #expect(try fs.view(Array("/d/f".utf8)).type == .regular)
    }

    @Test("a directory the host renames and replaces is looked up anew; at most DirectoryCache.capacity stay open")
    func keptDirectoryReplacedAndBounded() throws {
        let (dir, fs) = try tree(.mappedXattr)
        defer { withExtendedLifetime(dir) {} }
        #expect(try fs.view(Array("/d/f".utf8)).type == .regular)
        #expect(rename(dir.path + "/d", dir.path + "/moved") == 0 && mkdir(dir.path + "/d", 0o755) == 0)
        #expect(failure { _ = try fs.view(Array("/d/f".utf8)) } == ENOENT)
        #expect(try fs.view(Array("/moved/f".utf8)).type == .regular)
        for i in 0..<(DirectoryCache.capacity + 44) {
            #expect(mkdir(dir.path + "/d/\(i)", 0o755) == 0 && mkdir(dir.path + "/d/\(i)/sub", 0o755) == 0)
            #expect(try fs.view(Array("/d/\(i)/sub".utf8)).type == .directory)
        }
        #expect(fs.directories.count == DirectoryCache.capacity)
        // The least recently used went first: the last ones walked are still kept.
        let last = DirectoryCache.capacity + 43
        #expect(fs.directories.open(Array("d/\(last)".utf8)).map { close($0) } != nil)
    }

    @Test("a tree with an unfinished conversion is refused")
    func interruptedConversion() throws {
        let (dir, _) = try tree(.mappedXattr)
        let fd = open(dir.path + "/.virtfs-convert-state", O_CREAT | O_WRONLY, 0o600)
        // What virtfs-convert records first (Converter.stateText).
        _ = "virtfs-convert from=mapped-xattr to=mapped-file\n".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        #expect(throws: VirtFSError.self) { _ = try GuestFilesystem(tree: dir.bytes, model: .mappedXattr) }
    }

    @Test("libfuse gets a read-write mount unless -o ro (the last of ro and rw wins), default_permissions with allow_other")
    func options() throws {
        func options(_ given: [String]) throws -> String {
            try MountRequest(tree: Array("/srv/a,b\\c".utf8), mountpoint: [], model: nil, options: given, foreground: false).fuseOptions()
        }
        #expect(try options([]) == "rw,max_idle_threads=10,fsname=/srv/a\\,b\\\\c,subtype=virtfs")
        #expect(try options(["ro,allow_other"]) == "ro,default_permissions,allow_other,max_idle_threads=10,fsname=/srv/a\\,b\\\\c,subtype=virtfs")
        #expect(try options(["ro", "rw"]) == "rw,max_idle_threads=10,fsname=/srv/a\\,b\\\\c,subtype=virtfs")
        #expect(try options(["rw,ro"]).hasPrefix("ro,"))
        #expect(try options(["max_idle_threads=4"]) == "rw,max_idle_threads=4,fsname=/srv/a\\,b\\\\c,subtype=virtfs")
    }
}
