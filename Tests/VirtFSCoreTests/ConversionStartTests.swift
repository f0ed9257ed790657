import Glibc
import Testing
import VirtFSCore
import VirtFSTestSupport

/// Where a conversion starts: the model named, else the one an unfinished run recorded; an
/// unfinished run to another model is refused first.
struct ConversionStartTests {
    func tree(recording header: String?) throws -> (TemporaryDirectory, Walker.Location) {
        let tree = TemporaryDirectory()
        if let header {
            let fd = open(tree.path + "/.virtfs-convert-state", O_WRONLY | O_CREAT | O_EXCL, 0o600)
            #expect(fd >= 0)
            try Sys.writeAll(fd, Array(header.utf8), name: [])
            close(fd)
        }
        return (tree, try Walker.exportRoot(tree.bytes))
    }

    @Test func anUnfinishedRunToTheSameModelStartsFromItsRecordedModel() throws {
        let (directory, root) = try tree(recording: "virtfs-convert from=none to=mapped-xattr\n")
        defer { withExtendedLifetime(directory) {} }
        #expect(try Converter.sourceModel(of: root, from: nil, to: .mappedXattr) == SecurityModel.none)
    }

    @Test func aNamedSourceModelWins() throws {
        let (directory, root) = try tree(recording: "virtfs-convert from=none to=mapped-xattr\n")
        defer { withExtendedLifetime(directory) {} }
        #expect(try Converter.sourceModel(of: root, from: .passthrough, to: .mappedXattr) == .passthrough)
    }

    @Test func anUnfinishedRunToAnotherModelIsRefused() throws {
        let (directory, root) = try tree(recording: "virtfs-convert from=none to=mapped-xattr\n")
        defer { withExtendedLifetime(directory) {} }
        let error = #expect(throws: VirtFSError.self) { try Converter.sourceModel(of: root, from: SecurityModel.none, to: .mappedFile) }
        guard case .interruptedConversion(let from, let to)? = error?.reason else {
            Issue.record("not an interrupted conversion: \(String(describing: error))")
            return
        }
        #expect(from == SecurityModel.none && to == .mappedXattr)
    }

    @Test func withoutARecordTheModelNamedIsTaken() throws {
        let (directory, root) = try tree(recording: nil)
        defer { withExtendedLifetime(directory) {} }
        #expect(try Converter.sourceModel(of: root, from: .mappedFile, to: .none) == .mappedFile)
    }
}
