import Glibc
import Testing
@testable import VirtFSArchive
import VirtFSCore
import VirtFSTestSupport

extension ArchiveSafety {
    /// A member as `member` makes it, with a mode a directory can be entered with.
    func entered(_ path: String, _ type: FileType, target: String? = nil) -> ArchiveMember {
        var m = member(path, type, target: target)
        m.permissions = type == .directory ? 0o755 : 0o644
        return m
    }

    @Test("a name the archive gives twice is what its last member says: replaced, or updated when both are directories; a directory with entries is not replaced",
          arguments: [SecurityModel.mappedXattr, .mappedFile, .none])
    func namedTwice(model: SecurityModel) throws {
        let scratch = TemporaryDirectory()
        var again = entered("d", .directory)
        again.permissions = 0o750
        try hostile([
            entered("d", .directory), again,
            entered("f", .regular), entered("f", .symlink, target: "t"),
            entered("l", .symlink, target: "t"), entered("l", .regular),
            entered("e", .directory), entered("e", .regular),
            entered("n", .directory), entered("n/c", .regular), entered("n", .regular),
        ], at: scratch.file("twice.tar"))
        let tree = scratch.sub("tree")
        let (summary, refused, other) = try importArchive(scratch.file("twice.tar"), into: tree, model: model)
        #expect(refused.map { String(decoding: $0.path, as: UTF8.self) } == ["n"])
        #expect(refused.first?.detail.contains("would replace a directory that is not empty") == true)
        #expect(other.isEmpty)
        #expect(summary.total == 10 && summary.refused == 1 && summary.failures == 0)
        let root = try Walker.exportRoot(Array(tree.utf8))
        func view(_ name: String) throws -> GuestView {
            try model.codec.decode(Walker.inside(root, relative: Bytes.components(Array(name.utf8)), path: Array(name.utf8)).entry())
        }
        #expect(try view("d").type == .directory && view("d").attributes.permissions == 0o750)
        #expect(try view("f").type == .symlink && view("f").attributes.symlinkTarget == Array("t".utf8))
        #expect(try view("l").type == .regular && view("l").host.size == 6)
        #expect(try view("e").type == .regular)
        #expect(try view("n").type == .directory && view("n/c").type == .regular)
        // Every name once, and in mapped-file one metadata file per name, none left over.
        var names: [String] = []
        try Sys.forEachName(in: root.directory.fd) { name, _ in names.append(String(decoding: name, as: UTF8.self)); return true }
        #expect(names.filter { $0 != ".virtfs_metadata" }.sorted() == ["d", "e", "f", "l", "n"])
        if model == .mappedFile {
            var stored: [String] = []
            try Sys.forEachName(in: root.directory.metadataDirectory()!) { name, _ in stored.append(String(decoding: name, as: UTF8.self)); return true }
            #expect(stored.sorted() == ["d", "e", "f", "l", "n"])
        }
    }
}
