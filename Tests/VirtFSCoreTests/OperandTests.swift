import Glibc
import Testing
import VirtFSTestSupport
import VirtFSCore

/// How every tool turns what the user names into a place in a tree and a model to read it with.
@Suite struct OperandResolution {
    @Test("with --root, an operand inside is found below the root, and one outside is refused")
    func insideRoot() throws {
        let tree = try FixtureTree(.mappedXattr)
        mkdir(tree.dir.path + "/elsewhere", 0o755)
        let resolver = try OperandResolver(root: tree.rootBytes)
        let location = try resolver.locate(Array(tree.path("etc/passwd").utf8), recursive: false)
        #expect(location.name == Array("passwd".utf8))
        #expect(!location.isExportRoot)
        #expect(try resolver.locate(tree.rootBytes, recursive: true).isExportRoot)
        #expect(throws: VirtFSError.self) {
            try resolver.locate(Array((tree.dir.path + "/elsewhere").utf8), recursive: false)
        }
    }

    @Test("with --root, a symlink operand is the symlink itself, even when it points out of the tree")
    func symlinkNotFollowed() throws {
        let tree = try FixtureTree(.mappedXattr)
        symlink(tree.dir.path, tree.path("out"))
        let resolver = try OperandResolver(root: tree.rootBytes)
        let entry = try resolver.locate(Array(tree.path("out").utf8), recursive: false).entry()
        #expect(entry.stat.mode & FileType.mask == FileType.symlink.rawValue)
    }

    @Test("without --root, a directory is an export root when it holds .virtfs_metadata_root or is walked recursively")
    func exportRoots() throws {
        let file = try FixtureTree(.mappedFile)
        let none = try OperandResolver(root: nil)
        #expect(try none.locate(file.rootBytes, recursive: false).isExportRoot, "mapped-file root metadata marks it")
        #expect(try !none.locate(Array(file.path("etc").utf8), recursive: false).isExportRoot)
        #expect(try !none.locate(Array(file.path("etc").utf8), recursive: true).isExportRoot,
                "a directory of a mapped-file tree is an entry of it, even with -R")
        let xattr = try FixtureTree(.mappedXattr)
        #expect(try none.locate(Array(xattr.path("etc").utf8), recursive: true).isExportRoot)
        #expect(try !none.locate(Array(xattr.path("etc").utf8), recursive: false).isExportRoot)
    }

    @Test("the model is the one the tree shows, or the one the user names", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func models(model: SecurityModel) throws {
        let tree = try FixtureTree(model)
        let resolver = try OperandResolver(root: tree.rootBytes)
        #expect(try resolver.resolve(Array(tree.path("bin/sh").utf8), recursive: false, explicit: nil).1 == model)
        // A named model is taken as named: whether it contradicts the tree is fsck's verdict to give.
        let other: SecurityModel = model == .mappedXattr ? .mappedFile : .mappedXattr
        #expect(try resolver.resolve(Array(tree.path("bin/sh").utf8), recursive: false, explicit: other).1 == other)
        // Without --root the operand's own tree is examined.
        #expect(try OperandResolver(root: nil).resolve(tree.rootBytes, recursive: true, explicit: nil).1 == model)
    }

    @Test("a half-converted tree is refused whatever model is named")
    func interrupted() throws {
        let tree = try FixtureTree(.mappedXattr)
        tree.write(".virtfs-convert-state", "virtfs-convert from=mapped-xattr to=mapped-file\n")
        for explicit in [nil, SecurityModel.mappedXattr, .mappedFile] {
            #expect(throws: VirtFSError.self) {
                try OperandResolver(root: tree.rootBytes).resolve(Array(tree.path("bin/sh").utf8), recursive: false, explicit: explicit)
            }
            #expect(throws: VirtFSError.self) {
                try OperandResolver(root: nil).resolve(tree.rootBytes, recursive: true, explicit: explicit)
            }
        }
    }

    @Test("a tree with both mapped models' metadata is refused unless the user names one")
    func mixed() throws {
        let tree = try FixtureTree(.mappedFile)
        _ = system("cd '\(tree.root)' && for f in etc/passwd etc/group bin/sh home/alice/a dev/null; do setfattr -n user.virtfs.mode -v 0xa4810000 \"$f\"; done")
        let resolver = try OperandResolver(root: tree.rootBytes)
        #expect {
            try resolver.resolve(tree.rootBytes, recursive: true, explicit: nil)
        } throws: { error in
            "\(error)".contains("mixes models")
        }
        #expect(try resolver.resolve(tree.rootBytes, recursive: true, explicit: .mappedFile).1 == .mappedFile)
    }
}
