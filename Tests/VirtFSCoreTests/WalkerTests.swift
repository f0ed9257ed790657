import Glibc
import Testing
import VirtFSCore
import VirtFSTestSupport

/// The walk's per-directory context: what a consumer keeps per directory is made on the visit
/// of the directory, seen by the entries in it, and given back once when the walk leaves it.
struct WalkerTests {
    /// a/b/f, a/g, c, and a symlink l to a directory outside the tree that holds a file.
    func makeTree() -> (tree: TemporaryDirectory, outside: TemporaryDirectory) {
        let tree = TemporaryDirectory()
        let outside = TemporaryDirectory()
        _ = tree.sub("a")
        _ = tree.sub("a/b")
        for file in ["a/b/f", "a/g", "c"] { close(creat(tree.path + "/" + file, 0o644)) }
        close(creat(outside.path + "/secret", 0o644))
        symlink(outside.path, tree.path + "/l")
        return (tree, outside)
    }

    func relative(_ path: [UInt8], _ tree: TemporaryDirectory) -> String {
        let r = String(decoding: path.dropFirst(tree.bytes.count), as: UTF8.self)
        return r.isEmpty ? "." : String(r.drop(while: { $0 == "/" }))
    }

    func sortedWalker() -> Walker {
        var options = Walker.Options(recursive: true)
        options.sorted = true
        return Walker(options: options)
    }

    @Test func eachDirectoryIsLeftOnceAfterEverythingBelowItWasVisited() throws {
        let (tree, _) = makeTree()
        var events: [String] = []
        var failures: [VirtFSError] = []
        sortedWalker().walk(try Walker.exportRoot(tree.bytes), visit: { (entry, _: inout String?) -> String? in
            let name = relative(entry.path, tree)
            events.append("visit \(name)")
            return entry.stat.fileType == .directory ? name : nil
        }, leave: { directory, state in
            #expect(relative(directory.path, tree) == state)
            events.append("leave \(state)")
        }, failure: { failures.append($0) })
        #expect(failures.isEmpty)
        #expect(events == ["visit .", "visit a", "visit a/b", "visit a/b/f", "leave a/b", "visit a/g", "leave a",
                           "visit c", "visit l", "leave ."])
    }

    @Test func entriesChangeTheStateOfTheDirectoryTheyAreIn() throws {
        let (tree, _) = makeTree()
        typealias Count = (path: String, children: [String])
        var parents: [String: String] = [:]
        var left: [String: [String]] = [:]
        sortedWalker().walk(try Walker.exportRoot(tree.bytes), visit: { (entry, parent: inout Count?) -> Count? in
            let name = relative(entry.path, tree)
            parents[name] = parent?.path ?? "none"
            parent?.children.append(name)
            return entry.stat.fileType == .directory ? (name, []) : nil
        }, leave: { _, state in
            left[state.path] = state.children
        }, failure: { _ in })
        #expect(parents == [".": "none", "a": ".", "a/b": "a", "a/b/f": "a/b", "a/g": "a", "c": ".", "l": "."])
        #expect(left == [".": ["a", "c", "l"], "a": ["a/b", "a/g"], "a/b": ["a/b/f"]])
    }

    @Test func aDirectoryWithoutStateGivesItsEntriesNoneAndIsNotLeft() throws {
        let (tree, _) = makeTree()
        var parentsInA: [String: Bool] = [:]
        var left: [String] = []
        sortedWalker().walk(try Walker.exportRoot(tree.bytes), visit: { (entry, parent: inout String?) -> String? in
            let name = relative(entry.path, tree)
            if name.hasPrefix("a/") && !name.hasPrefix("a/b/") { parentsInA[name] = parent != nil }
            return entry.stat.fileType == .directory && name != "a" ? name : nil
        }, leave: { _, state in left.append(state) }, failure: { _ in })
        #expect(parentsInA == ["a/b": false, "a/g": false])
        #expect(left == ["a/b", "."])
    }

    @Test func aSymlinkToADirectoryIsVisitedAsASymlinkAndNeverEntered() throws {
        let (tree, outside) = makeTree()
        var visited: [String: FileType?] = [:]
        var left: [[UInt8]] = []
        sortedWalker().walk(try Walker.exportRoot(tree.bytes), visit: { (entry, _: inout Bool?) -> Bool? in
            visited[relative(entry.path, tree)] = entry.stat.fileType
            return true
        }, leave: { directory, _ in left.append(directory.path) }, failure: { _ in })
        #expect(visited["l"] == .symlink)
        #expect(!visited.keys.contains { $0.hasPrefix("l/") || $0.contains("secret") })
        #expect(!left.contains(tree.file("l")))
        #expect(left.count == 3)
        _ = outside
    }

    @Test func aNonRecursiveWalkVisitsTheOperandAndLeavesNothing() throws {
        let (tree, _) = makeTree()
        var visits = 0
        var leaves = 0
        Walker(options: .init(recursive: false)).walk(try Walker.exportRoot(tree.bytes), visit: { (_, _: inout Int?) -> Int? in
            visits += 1
            return 0
        }, leave: { _, _ in leaves += 1 }, failure: { _ in })
        #expect(visits == 1)
        #expect(leaves == 0)
    }

    /// The events of a walk on `jobs` threads: visits (with what the threads saw), failures
    /// and leaves, in the order the calling thread got them.
    func parallelEvents(_ walker: Walker, _ tree: TemporaryDirectory, jobs: Int) throws -> [String] {
        var events: [String] = []
        walker.walk(try Walker.exportRoot(tree.bytes), jobs: jobs, transform: { entry in
            "visit \(relative(entry.path, tree)) \(entry.stat.fileType.map { "\($0)" } ?? "?") \(entry.stat.inode)"
        }, visit: { events.append($0) }, leave: { events.append("leave \(relative($0.path, tree))") },
        failure: { events.append("failure \(relative($0.path, tree)) \($0.errno)") })
        return events
    }

    @Test func aWalkOnSeveralThreadsGivesWhatAPlainWalkGivesInTheSameOrder() throws {
        // More entries than one batch holds (512) and more directories (64), a symlink to a
        // directory outside, and metadata of a removed name (the mapped-file audit reports it
        // when the walk leaves its directory).
        let (tree, _) = makeTree()
        _ = tree.sub("many")
        for d in 0..<100 {
            _ = tree.sub("many/d\(d)")
            for f in 0..<(d % 10 == 0 ? 80 : 3) { close(creat(tree.path + "/many/d\(d)/f\(f)", 0o644)) }
        }
        _ = tree.sub("many/d7/.virtfs_metadata")
        close(creat(tree.path + "/many/d7/.virtfs_metadata/gone", 0o600))
        var options = Walker.Options(recursive: true, model: .mappedFile)
        options.auditStorage = true
        let walker = Walker(options: options)
        let plain = try parallelEvents(walker, tree, jobs: 1)
        // Visits: the root, a a/b a/b/f a/g c l, many and its 100 directories and their files;
        // leaves: the root, a, a/b, many and its directories; one failure.
        #expect(plain.count == (1 + 6 + 1 + 100 + 10 * 80 + 90 * 3) + (4 + 100) + 1)
        #expect(plain.contains { $0.hasPrefix("visit l symlink") })
        #expect(!plain.contains { $0.contains("secret") })
        #expect(plain.filter { $0.hasPrefix("failure many/d7/.virtfs_metadata/gone ") }.count == 1)
        for jobs in [2, 3, 8] {
            #expect(try parallelEvents(walker, tree, jobs: jobs) == plain)
        }
    }

    @Test func aDirectoryStreamListsNamesAsBytesWithoutDotAndDotDot() throws {
        let tree = TemporaryDirectory()
        let odd: [UInt8] = [0x66, 0xff, 0x0a]
        let fd = (tree.bytes + [UInt8(ascii: "/")] + odd + [0]).withUnsafeBufferPointer {
            creat(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), 0o644)
        }
        #expect(fd >= 0)
        close(fd)
        _ = tree.sub("d")
        let root = try Walker.exportRoot(tree.bytes)
        let stream = try DirectoryStream(root.directory.fd, path: tree.bytes)
        #expect(try stream.sortedNames() == [Array("d".utf8), odd])
        // A second stream of the same descriptor starts from the beginning again.
        var names: [[UInt8]] = []
        let again = try DirectoryStream(root.directory.fd)
        while let (name, _) = try again.next() { names.append(name) }
        #expect(names.count == 2)
    }
}
