import Glibc
import Testing
@testable import VirtFSCore
import VirtFSTestSupport

/// What a read-only pass learns about an entry is asked of the kernel once, and what a reader
/// does not show is not read, without changing what any reader sees.
@Suite struct ReadOnceTests {
    static let spec = """
        dir . 0755 0:0
        file f 0644 1:2 content=data
        symlink l 0777 3:4 target=f

        """

    func entry(_ tree: FixtureTree, _ name: String) throws -> HostEntry {
        try Walker.inside(Walker.exportRoot(tree.rootBytes), relative: [Array(name.utf8)], path: Array(tree.path(name).utf8)).entry()
    }

    @Test("numbers are spelled as String(_:radix:) spells them", arguments: [8, 10, 16])
    func digits(radix: Int) {
        let values: [UInt64] = [0, 1, 7, 8, 9, 10, 15, 16, 255, 256, 0o7777, 65535, 1 << 32, UInt64.max - 1, UInt64.max]
        for value in values {
            #expect(StatFormatter.digits(value, radix: UInt64(radix)) == Array(String(value, radix: radix).utf8))
        }
    }

    @Test("a remembering entry lists its xattrs once; a fresh entry asks again", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func xattrNamesOnce(model: SecurityModel) throws {
        let tree = try FixtureTree(model, spec: Self.spec)
        let remembering = try entry(tree, "f").remembering()
        let first = try remembering.xattrNames()
        tree.setXattr("f", "user.added", [1])
        #expect(try remembering.xattrNames() == first, "the pass's first answer stands")
        #expect(try entry(tree, "f").xattrNames().contains(Array("user.added".utf8)), "a fresh entry sees the change")
        #expect(!first.contains(Array("user.added".utf8)))
    }

    @Test("mapped-file: the metadata file's stat decoding took is the one a stat by name gives")
    func metadataStatOnce() throws {
        let tree = try FixtureTree(.mappedFile, spec: Self.spec)
        let codec = MappedFileCodec(lenient: true)
        for name in ["f", "l"] {
            let remembering = try entry(tree, name).remembering()
            _ = try codec.decode(remembering)
            let fact = try #require(remembering.facts?.metadataStat, "decoding noted the metadata file")
            let known = try #require(fact, "and found one")
            let byName = try #require(codec.metadataStat(of: try entry(tree, name)))
            // (Reading the file may have moved its atime since.)
            #expect(known.identity == byName.identity && known.mode == byName.mode && known.size == byName.size
                    && known.nlink == byName.nlink && known.uid == byName.uid && known.mtime == byName.mtime)
            #expect(known.fileType == .regular)
        }
        // No metadata file: known to be absent, as a lookup finds.
        tree.write("added", "x")
        let added = try entry(tree, "added").remembering()
        _ = try codec.decode(added)
        #expect(added.facts?.metadataStat == .some(nil))
        #expect(codec.metadataStat(of: try entry(tree, "added")) == nil)
    }

    @Test("a stored symlink decoded without its target is the same view less the target", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func storedTargetNotRead(model: SecurityModel) throws {
        let tree = try FixtureTree(model, spec: Self.spec)
        let codec = model.codec(lenient: true)
        // Without reading first: a read may move the file's atime, which the view shows.
        var skipping = try entry(tree, "l")
        skipping.readsStoredSymlinkTarget = false
        var partial = try codec.decode(skipping)
        let full = try codec.decode(entry(tree, "l"))
        #expect(full.type == .symlink && full.attributes.symlinkTarget == Array("f".utf8))
        #expect(partial.attributes.symlinkTarget == nil)
        partial.attributes.symlinkTarget = full.attributes.symlinkTarget
        #expect(partial == full)

        // A target too long for the guest is reported either way, from the file's size.
        tree.write("l", String(repeating: "a/", count: 2100))
        let long = try codec.decode(entry(tree, "l"))
        skipping = try entry(tree, "l")
        skipping.readsStoredSymlinkTarget = false
        let longSkipped = try codec.decode(skipping)
        #expect(long.diagnostics.count == 1 && long.diagnostics[0].detail.contains("symlink target longer than 4095 bytes"))
        #expect(longSkipped.diagnostics.map(\.detail) == long.diagnostics.map(\.detail))
    }

    @Test("mapped-file: the audit after a walk still finds metadata whose entry is gone, and only that")
    func auditAfterWalk() throws {
        let tree = try FixtureTree(.mappedFile, spec: Self.spec)
        unlink(tree.path("f"))
        var orphans: [[UInt8]] = []
        let walker = Walker(options: .init(recursive: true, model: .mappedFile))
        walker.walk(try Walker.exportRoot(tree.rootBytes), visit: { _ in }, failure: { error in
            if error.finding == .metadataOrphaned { orphans.append(error.path) }
        })
        #expect(orphans == [Array((tree.root + "/.virtfs_metadata/f").utf8)])
    }
}
