import Glibc
import CVirtFS
import Testing
import VirtFSTestSupport
@testable import VirtFSCore

/// Each model's storage operations, through its codec only: what a conversion, a repair, an
/// overlay rewrite and an import do when they build an object aside and put it in place, and
/// what a codec reports as typed findings.
@Suite struct Storage {
    func entry(_ dir: DirectoryContext, _ name: String) throws -> HostEntry {
        try HostEntry(directory: dir, name: Array(name.utf8), path: Bytes.join(dir.path, Array(name.utf8)))
    }

    func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    func write(_ path: String, _ text: String) {
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    func setXattr(_ path: String, _ name: String, _ hex: String) {
        let value = Bytes.fromHex(hex)!
        _ = value.withUnsafeBytes { setxattr(path, name, $0.baseAddress, value.count, 0) }
    }

    /// Everything in the directory and, for mapped-file, in its metadata directory.
    func names(_ dir: TemporaryDirectory) -> Set<String> {
        var out = Set<String>()
        for sub in ["", "/.virtfs_metadata"] {
            guard let d = opendir(dir.path + sub) else { continue }
            defer { closedir(d) }
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { out.insert(sub.isEmpty ? name : ".virtfs_metadata/" + name) }
            }
        }
        return out
    }

    /// A mapped-file tree with one file `f` owned by 1000:1000.
    func mappedFileTree() throws -> (TemporaryDirectory, DirectoryContext, any ModelCodec) {
        let tmp = TemporaryDirectory()
        let dir = try DirectoryContext.open(path: tmp.bytes)
        let codec = SecurityModel.mappedFile.codec
        let a = GuestAttributes(type: .regular, permissions: 0o640, uid: 1000, gid: 1000)
        try codec.create(a, named: Array("f".utf8), in: dir, content: .empty, placement: HostPlacement())
        return (tmp, dir, codec)
    }

    @Test("a metadata file is written past whatever was left under its temporary name, never through it")
    func metadataPastPlantedTemporary() throws {
        let (tmp, dir, codec) = try mappedFileTree()
        let outside = TemporaryDirectory()
        write(outside.path + "/victim", "keep")
        let planted = tmp.path + "/.virtfs_metadata/" + String(decoding: TemporaryName.current, as: UTF8.self)
        #expect(symlink(outside.path + "/victim", planted) == 0)
        let f = try entry(dir, "f")
        var a = try codec.decode(f).attributes
        a.uid = 7
        try codec.update(a, of: f, placement: HostPlacement())
        #expect(try codec.decode(entry(dir, "f")).attributes.uid == 7)
        #expect(try Sys.readFile(AT_FDCWD, Array((outside.path + "/victim").utf8), limit: 16).bytes == Array("keep".utf8))
        #expect(!exists(planted))
    }

    @Test("metadata written for a name without any appears whole under that name, and no other name is left")
    func metadataForANameWithoutAny() throws {
        let (tmp, dir, codec) = try mappedFileTree()
        write(tmp.path + "/g", "data")
        var a = GuestAttributes(type: .regular, permissions: 0o4755, uid: 7, gid: 8)
        try codec.update(a, of: entry(dir, "g"), placement: HostPlacement())
        #expect(try codec.decode(entry(dir, "g")).attributes == a)
        #expect(names(tmp) == ["f", "g", ".virtfs_metadata", ".virtfs_metadata/f", ".virtfs_metadata/g"])
        // Written again: replaced, with nothing left beside it.
        a.uid = 9
        try codec.update(a, of: entry(dir, "g"), placement: HostPlacement())
        #expect(try codec.decode(entry(dir, "g")).attributes.uid == 9)
        #expect(names(tmp) == ["f", "g", ".virtfs_metadata", ".virtfs_metadata/f", ".virtfs_metadata/g"])
    }

    @Test("a whole-file write whose last rename fails leaves neither the temporary nor a changed name")
    func wholeFileFailureLeavesNothing() throws {
        let tmp = TemporaryDirectory()
        let dir = try DirectoryContext.open(path: tmp.bytes)
        // A non-empty directory holds the name: linking the new file there fails (EEXIST), and
        // so does renaming it over the directory.
        #expect(mkdir(tmp.path + "/name", 0o700) == 0)
        write(tmp.path + "/name/inside", "keep")
        let temporary = TemporaryName.current
        #expect(throws: VirtFSError.self) {
            try Sys.writeWhole(dir.fd, Array("name".utf8), via: temporary) { fd throws(VirtFSError) in
                try Sys.writeAll(fd, Array("new".utf8), name: [])
            }
        }
        #expect(names(tmp) == ["name"])
        #expect(try Sys.readFile(dir.fd, Array("name/inside".utf8), limit: 16).bytes == Array("keep".utf8))
    }

    @Test("commitTemporary puts an object built aside in place of a name, metadata and data, in every model",
          arguments: SecurityModel.allCases)
    func commitReplaces(model: SecurityModel) throws {
        let tmp = TemporaryDirectory()
        let dir = try DirectoryContext.open(path: tmp.bytes)
        let codec = model.codec
        let old = GuestAttributes(type: .regular, permissions: 0o644, uid: geteuid(), gid: getegid())
        try codec.create(old, named: Array("f".utf8), in: dir, content: .bytes(Array("old".utf8)), placement: HostPlacement())
        var new = old
        new.permissions = 0o600
        if model.isMapped { new.uid = 1234; new.gid = 5678; new.type = .symlink; new.symlinkTarget = Array("target".utf8) }
        let temporary = TemporaryName.current
        try codec.create(new, named: temporary, in: dir, content: .bytes(Array("new".utf8)), placement: HostPlacement())
        try codec.commitTemporary(temporary, as: Array("f".utf8), in: dir, dataFirst: false)
        let view = try codec.decode(entry(dir, "f"))
        #expect(view.attributes.permissions == new.permissions)
        #expect(view.uid == new.uid && view.gid == new.gid && view.type == new.type)
        if model.isMapped { #expect(view.attributes.symlinkTarget == Array("target".utf8)) }
        // Nothing is left under the temporary name, data or metadata.
        let left = names(tmp)
        #expect(left == (model == .mappedFile ? ["f", ".virtfs_metadata", ".virtfs_metadata/f"] : ["f"]), "\(left)")
    }

    @Test("mapped-file: a temporary without metadata takes the name's away, data first when asked")
    func commitWithoutMetadata() throws {
        for dataFirst in [false, true] {
            let (tmp, dir, codec) = try mappedFileTree()
            #expect(codec.hasMetadata(try entry(dir, "f")))
            // A host object QEMU serves as it is (what overlay writes for a real whiteout device).
            write(tmp.path + "/" + String(decoding: TemporaryName.current, as: UTF8.self), "")
            try codec.commitTemporary(TemporaryName.current, as: Array("f".utf8), in: dir, dataFirst: dataFirst)
            #expect(!codec.hasMetadata(try entry(dir, "f")))
            #expect(names(tmp) == ["f", ".virtfs_metadata"])
        }
    }

    @Test("mapped-file: a missing temporary fails the commit and leaves the name as it was")
    func commitMissing() throws {
        let (tmp, dir, codec) = try mappedFileTree()
        // dataFirst: the data rename fails before the metadata is touched.
        #expect(throws: VirtFSError.self) {
            try codec.commitTemporary(TemporaryName.current, as: Array("f".utf8), in: dir, dataFirst: true)
        }
        #expect(try codec.decode(entry(dir, "f")).uid == 1000)
    }

    @Test("discarding temporaries removes what an interrupted run left, and only that")
    func discard() throws {
        let (tmp, dir, codec) = try mappedFileTree()
        let a = GuestAttributes(type: .regular, permissions: 0o640, uid: 1000, gid: 1000)
        try codec.create(a, named: TemporaryName.current, in: dir, content: .empty, placement: HostPlacement())
        write(tmp.path + "/.virtfs_metadata/.virtfs-tools.1.tmp", "virtfs.uid=0\n")
        let built = String(decoding: TemporaryName.current, as: UTF8.self)
        #expect(names(tmp) == ["f", built, ".virtfs_metadata", ".virtfs_metadata/f", ".virtfs_metadata/" + built, ".virtfs_metadata/.virtfs-tools.1.tmp"])
        codec.discardTemporaries(in: dir)
        #expect(names(tmp) == ["f", built, ".virtfs_metadata", ".virtfs_metadata/f"])
        codec.discardTemporary(try entry(dir, built))
        #expect(names(tmp) == ["f", ".virtfs_metadata", ".virtfs_metadata/f"])
    }

    @Test("mapped-file holds metadata under names of a directory and keeps it per name; mapped-xattr holds user.virtfs.*")
    func holdsMetadata() {
        let reserved = [".virtfs_metadata", ".virtfs_metadata_root"].map { Array($0.utf8) }
        let plain = [".virtfs_metadata2", "virtfs_metadata", ".virtfs-tools.1.tmp"].map { Array($0.utf8) }
        for model in SecurityModel.allCases {
            let codec = model.codec
            #expect(reserved.allSatisfy { codec.holdsMetadata($0) == (model == .mappedFile) })
            #expect(!plain.contains { codec.holdsMetadata($0) })
            #expect(codec.holdsMetadata(xattr: Array("user.virtfs.mode".utf8)) == (model == .mappedXattr))
            #expect(!codec.holdsMetadata(xattr: Array("user.virtfsx".utf8)))
            #expect(codec.keepsMetadataByName == (model == .mappedFile))
        }
    }

    @Test("mapped-file's audit reports orphaned and reserved metadata as findings; other models have none to audit")
    func audit() throws {
        let tmp = TemporaryDirectory()
        mkdir(tmp.path + "/.virtfs_metadata", 0o700)
        write(tmp.path + "/here", "")
        write(tmp.path + "/.virtfs_metadata/here", "virtfs.uid=0\n")
        write(tmp.path + "/.virtfs_metadata/gone", "virtfs.uid=0\n")
        write(tmp.path + "/.virtfs_metadata/.virtfs_metadata", "virtfs.uid=0\n")
        for model in SecurityModel.allCases {
            let dir = try DirectoryContext.open(path: tmp.bytes)
            var found: [String: StorageFinding?] = [:]
            model.codec.audit(dir) { found[String(decoding: $0.path, as: UTF8.self)] = $0.finding }
            if model == .mappedFile {
                #expect(found == [tmp.path + "/.virtfs_metadata/gone": .metadataOrphaned,
                                  tmp.path + "/.virtfs_metadata/.virtfs_metadata": .metadataForReservedName], "\(found)")
            } else {
                #expect(found.isEmpty)
            }
        }
    }

    @Test("a lenient decode reports what it found as typed findings, each mapped to one fsck check")
    func typedFindings() throws {
        let tmp = TemporaryDirectory()
        let cases: [(String, [String: String], StorageFinding, Check)] = [
            ("empty-uid", ["user.virtfs.uid": ""], .valueIgnored, .xattrLength),
            ("long-gid", ["user.virtfs.gid": "0100000000"], .valueIgnored, .xattrLength),
            ("short-uid", ["user.virtfs.uid": "010203"], .valueUndefined, .xattrLength),
            ("no-type", ["user.virtfs.mode": "a4010000"], .modeWithoutType, .modeType),
            ("dir-on-file", ["user.virtfs.mode": "ed410000"], .typeContradictsHost, .modeType),
            ("bad-acl", ["user.virtfs.system.posix_acl_access": "0200000040000700ffffffff"], .aclRejected, .badACL),
        ]
        for (name, xattrs, _, _) in cases {
            write(tmp.path + "/" + name, "")
            for (key, hex) in xattrs { setXattr(tmp.path + "/" + name, key, hex) }
        }
        mkdir(tmp.path + "/.virtfs_metadata", 0o700)
        write(tmp.path + "/garbage", "")
        write(tmp.path + "/.virtfs_metadata/garbage", "virtfs.uid=12x\n")
        write(tmp.path + "/linked", "")
        symlink("/etc/passwd", tmp.path + "/.virtfs_metadata/linked")
        let dir = try DirectoryContext.open(path: tmp.bytes)
        let xattr = SecurityModel.mappedXattr.codec(lenient: true)
        for (name, _, finding, check) in cases {
            let diagnostics = try xattr.decode(entry(dir, name)).diagnostics
            #expect(diagnostics.map(\.finding) == [finding], "\(name): \(diagnostics)")
            #expect(diagnostics.map(Check.init) == [check])
        }
        // Strict decoding refuses what no one can read.
        #expect(throws: VirtFSError.self) { try SecurityModel.mappedXattr.codec.decode(entry(dir, "short-uid")) }
        let file = SecurityModel.mappedFile.codec(lenient: true)
        #expect(try file.decode(entry(dir, "garbage")).diagnostics.map(\.finding) == [.metadataUnparsable])
        #expect(try file.decode(entry(dir, "linked")).diagnostics.map(\.finding) == [.metadataNotAFile])
        #expect(Check(VirtFSError.system("lgetxattr", errno: EACCES)) == .unreadable)
    }

    @Test("a name's own metadata is shared and removed by name only where the model keeps it by name",
          arguments: [SecurityModel.mappedXattr, .mappedFile])
    func metadataByName(model: SecurityModel) throws {
        let tmp = TemporaryDirectory()
        let dir = try DirectoryContext.open(path: tmp.bytes)
        let codec = model.codec
        let a = GuestAttributes(type: .regular, permissions: 0o640, uid: 1000, gid: 1000)
        try codec.create(a, named: Array("f".utf8), in: dir, content: .empty, placement: HostPlacement())
        #expect(link(tmp.path + "/f", tmp.path + "/g") == 0)
        // g is a second name of f's inode, without a metadata file of its own yet.
        let shared = try codec.shareMetadata(of: Array("f".utf8), in: dir, with: Array("g".utf8), in: dir, placement: HostPlacement())
        #expect(shared == (model == .mappedFile))
        let g = try entry(dir, "g")
        #expect(codec.hasMetadata(g))
        if model == .mappedFile {
            #expect(codec.metadataStat(of: try entry(dir, "f"))?.identity == codec.metadataStat(of: g)?.identity)
        }
        try codec.removeNameMetadata(of: g)
        // mapped-xattr's metadata is the inode's: the other name keeps it, and so does this one.
        #expect(codec.hasMetadata(try entry(dir, "g")) == (model == .mappedXattr))
        #expect(codec.hasMetadata(try entry(dir, "f")))
    }
}
