import Glibc
import Testing
import VirtFSArchive
import VirtFSCore
import VirtFSTestSupport

/// Runs a shell command of the real tools (tar, bsdtar, setfacl, setfattr, cp); a failure is
/// the test's, not a skip.
func sh(_ command: String) {
    #expect(system(command) == 0, "\(command)")
}

/// The guest view of every entry of a tree, by path below its root.
func guestViews(_ root: String, _ model: SecurityModel) throws -> [[UInt8]: GuestView] {
    var out: [[UInt8]: GuestView] = [:]
    let prefix = root.utf8.count
    Walker(options: .init(recursive: true, model: model)).walk(try Walker.exportRoot(Array(root.utf8)), visit: { entry in
        do {
            out[Array(entry.path.dropFirst(prefix))] = try model.codec.decode(entry)
        } catch {
            Issue.record("\(error)")
        }
    }, failure: { Issue.record("\($0)") })
    return out
}

/// A small tree with what archives lose most often: ACLs (access and default), a user xattr,
/// an xattr name that is not UTF-8, a hard link. Made by the invoking user, so it needs no root.
func lossyTree(at dir: String) {
    sh("""
        cd '\(dir)' && mkdir -p d/sub && echo one > f && echo two > d/g && ln f d/hl && ln -s ../f d/sl \
        && setfacl -m u:65534:r d/g && setfacl -m d:g:100:rx d/sub && setfattr -n user.note -v hi d/g \
        && setfattr -n "$(printf 'user.\\377')" -v raw f
        """)
}

@Suite struct ArchivedACLs {
    @Test("ACLs GNU tar and bsdtar archive as system.posix_acl_* xattrs or SCHILY.acl are imported as the ACLs they are, each once",
          arguments: ["tar --xattrs --xattrs-include='*' -cf", "tar --acls --xattrs --xattrs-include='*' -cf", "bsdtar -cf"])
    func aclsAsXattrs(tool: String) throws {
        let scratch = TemporaryDirectory()
        let source = scratch.sub("src")
        lossyTree(at: source)
        sh("\(tool) '\(scratch.path)/a.tar' -C '\(source)' .")
        for model in [SecurityModel.mappedXattr, .mappedFile] {
            let tree = scratch.sub(model.rawValue)
            let (summary, refused, other) = try importArchive(scratch.file("a.tar"), into: tree, model: model)
            #expect(summary.failures == 0 && summary.incomplete == 0 && refused.isEmpty && other.isEmpty, "\(other)")
            let want = try guestViews(source, .passthrough), got = try guestViews(tree, model)
            #expect(want[Array("/d/g".utf8)]?.attributes.accessACL != nil)
            #expect(want[Array("/d/sub".utf8)]?.attributes.defaultACL != nil)
            for (path, view) in want {
                #expect(got[path]?.attributes == view.attributes, "\(tool) \(model.rawValue) \(String(decoding: path, as: UTF8.self))")
            }
        }
    }

    @Test("an xattr name that is not UTF-8 is one xattr after a pax round trip, not two (libarchive's %-encoded SCHILY copy)")
    func oddXattrName() throws {
        let scratch = TemporaryDirectory()
        let source = scratch.sub("src")
        lossyTree(at: source)
        let (exported, problems) = try export(source, model: .passthrough, format: .pax, to: scratch.file("p.tar"))
        #expect(exported.failures == 0 && problems.isEmpty, "\(problems)")
        let reader = try ArchiveReader(path: scratch.file("p.tar"))
        var names: [[UInt8]] = []
        while let member = try reader.next() {
            if member.path == Array("./f".utf8) { names = member.xattrs.map(\.name) }
        }
        #expect(names == [Array("user.".utf8) + [0xff]])
    }
}

@Suite struct FailedImport {
    /// An archive whose last member's data stops half way: libarchive fails on it.
    func truncatedArchive(in scratch: TemporaryDirectory) -> [UInt8] {
        let source = scratch.sub("src")
        sh("cd '\(source)' && mkdir d && echo x > d/a && head -c 300000 /dev/urandom > d/z")
        sh("tar -cf '\(scratch.path)/full.tar' -C '\(source)' . && head -c 200000 '\(scratch.path)/full.tar' > '\(scratch.path)/cut.tar'")
        return scratch.file("cut.tar")
    }

    func run(_ importer: Importer, _ archive: [UInt8], _ target: Importer.Target) throws -> Importer.Summary {
        importer.run(try ArchiveReader(path: archive), into: target.root) { _ in }
    }

    @Test("a failed import into a directory it made removes it")
    func created() throws {
        let scratch = TemporaryDirectory()
        let archive = truncatedArchive(in: scratch)
        let importer = Importer(options: .init(model: .mappedFile))
        let target = try importer.prepare(scratch.file("new"))
        #expect(target.created)
        let summary = try run(importer, archive, target)
        // The member cut short, then the header that is not there.
        #expect(summary.failures == 2 && summary.total > 0)
        try importer.undo(target)
        #expect(access(scratch.path + "/new", F_OK) != 0)
    }

    @Test("a failed import into an empty directory it was given leaves it empty, with its owner, mode and xattrs")
    func given() throws {
        let scratch = TemporaryDirectory()
        let archive = truncatedArchive(in: scratch)
        let dir = scratch.sub("given")
        sh("chmod 751 '\(dir)' && setfattr -n user.mine -v 1 '\(dir)'")
        let before = try Sys.stat(fd: open(dir, O_RDONLY | O_DIRECTORY))
        var options = Importer.Options(model: .mappedXattr)
        options.placement = HostPlacement(directoryMode: 0o700, owner: (geteuid(), getegid()))
        let importer = Importer(options: options)
        let target = try importer.prepare(Array(dir.utf8))
        #expect(!target.created)
        #expect(try run(importer, archive, target).failures == 2)
        try importer.undo(target)
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        let after = try Sys.stat(fd: fd)
        #expect(try Sys.isEmptyDirectory(fd))
        #expect((after.permissions, after.uid, after.gid) == (before.permissions, before.uid, before.gid))
        #expect(try Sys.listXattrs(fd, [UInt8(ascii: ".")]) == [Array("user.mine".utf8)])
    }

    @Test("an archive that cannot be opened names the system's reason")
    func openError() throws {
        let scratch = TemporaryDirectory()
        #expect(throws: VirtFSError.system("open", path: scratch.file("none.tar"), errno: ENOENT)) {
            try ArchiveReader(path: scratch.file("none.tar"))
        }
        #expect(throws: VirtFSError.system("read", path: scratch.bytes, errno: EISDIR)) {
            try ArchiveReader(path: scratch.bytes)
        }
    }
}

@Suite(.serialized, .enabled(if: asRoot, "needs root: the source tree has root-owned files and device nodes")) struct TarballRestore {
    @Test("--metadata-only from the tree's own archive undoes cp -r: the restored tree exports byte-identical",
          arguments: [SecurityModel.mappedXattr, .mappedFile])
    func fromArchive(model: SecurityModel) throws {
        let scratch = TemporaryDirectory()
        let (_, tree) = try importedTree(in: scratch, model: model)
        let copy = scratch.path + "/copy"
        sh("cp -r '\(tree)' '\(copy)'")
        var problems: [String] = []
        let summary = try ManifestRestorer(options: .init(model: model)).runIsolated(try ArchiveReader(path: scratch.file("a.tar"), manifests: true),
                                                                         onto: try Walker.exportRoot(Array(copy.utf8))) { event in
            switch event {
            case .differs(let e), .missing(let e), .failed(let e), .incomplete(let e): problems.append(e.description)
            default: break
            }
        }
        #expect(problems.isEmpty, "\(problems)")
        let links = try guestViews(tree, model).values.filter { $0.type != .directory && $0.host.nlink > 1 }.count
        #expect(links > 1)
        // Every hard-linked name but one per inode was a separate copy.
        #expect(summary.relinked > 0 && summary.relinked < links)
        try export(tree, model: model, format: .pax, to: scratch.file("e1"))
        try export(copy, model: model, format: .pax, to: scratch.file("e2"))
        #expect(try scratch.read("e1") == scratch.read("e2"))
    }

    @Test("an mtree export names and counts every entry whose xattrs or ACLs it cannot hold")
    func mtreeLosses() throws {
        let scratch = TemporaryDirectory()
        let source = scratch.sub("source")
        try archivableTree(at: source)
        let (summary, problems) = try export(source, model: .passthrough, format: .mtree, to: scratch.file("m"))
        let having = try guestViews(source, .passthrough).values.filter {
            !$0.attributes.xattrs.isEmpty || $0.attributes.accessACL.map { !$0.isMinimal } == true || $0.attributes.defaultACL != nil
        }
        #expect(having.count > 0)
        #expect(summary.incomplete == having.count)
        #expect(Set(problems.map(\.path)) == Set(having.map(\.path)))
    }
}
