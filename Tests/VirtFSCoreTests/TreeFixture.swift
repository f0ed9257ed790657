import CVirtFS
import Glibc
import VirtFSCore
import VirtFSTestSupport

/// Whether the tests run as root. Trees in passthrough and none keep their guest owners and
/// device nodes on the host itself, so making one needs root; tests of those models skip
/// without it (mapped trees keep owners in metadata and need no privilege).
let runningAsRoot = geteuid() == 0

/// A tree spec materialised in a model in a fresh temporary directory (the export root is
/// `t`, so that tests can put things beside it), with the views, findings and repairs the
/// tools would see, reached through the library's public entry points only.
struct FixtureTree {
    let dir = TemporaryDirectory()
    let model: SecurityModel
    var root: String { dir.path + "/t" }
    var rootBytes: [UInt8] { Array(root.utf8) }

    /// `spec` is a tree spec's text; nil: testdata/fsck/base.tree, the tree every fsck case starts from.
    init(_ model: SecurityModel, spec: String? = nil) throws {
        self.model = model
        mkdir(dir.path + "/t", 0o755)
        let text = try spec ?? readText(testdata("fsck/base.tree"))
        try TreeSpec(text: text).materialize(at: rootBytes, model: model, placement: HostPlacement())
    }

    func path(_ relative: String) -> String { root + "/" + relative }

    func setXattr(_ relative: String, _ name: String, _ value: [UInt8]) {
        _ = value.withUnsafeBytes { lsetxattr(path(relative), name, $0.baseAddress, value.count, 0) }
    }

    func write(_ relative: String, _ text: String) {
        let fd = open(path(relative), O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, text.utf8.count) }
        close(fd)
    }

    func exists(_ relative: String) -> Bool {
        var st = stat()
        return lstat(path(relative), &st) == 0
    }

    /// Every entry's guest view in `model` (default: the tree's), keyed by path below the root
    /// (`.` for the root), and the errors and diagnostics decoding met.
    func views(in model: SecurityModel? = nil) throws -> (views: [String: GuestView], errors: [VirtFSError]) {
        let (views, errors) = try decodeTree(root, model: model ?? self.model)
        return (Dictionary(uniqueKeysWithValues: views.map { (String(decoding: $0.key, as: UTF8.self), $0.value) }), errors)
    }

    func view(_ relative: String) throws -> GuestView {
        try model.codec.decode(Walker.inside(Walker.exportRoot(rootBytes), relative: Bytes.components(Array(relative.utf8)),
                                             path: Array(path(relative).utf8)).entry())
    }

    func checker(_ configure: (inout Checker.Options) -> Void = { _ in }) throws -> Checker {
        var options = Checker.Options(model: model)
        configure(&options)
        return try Checker(root: Walker.exportRoot(rootBytes), options: options)
    }

    /// What virtfs-fsck -n reports.
    func findings(_ configure: (inout Checker.Options) -> Void = { _ in }) throws -> [Finding] {
        var found: [Finding] = []
        try checker(configure).check { found.append($0) }
        return found
    }

    /// What virtfs-fsck -y does: check, then apply every repair. Returns the findings repaired.
    @discardableResult
    func repairAll(_ configure: (inout Checker.Options) -> Void = { _ in }) throws -> [Finding] {
        let checker = try checker(configure)
        var found: [Finding] = []
        checker.check { found.append($0) }
        for finding in found where finding.repair != nil { try checker.repair(finding) }
        return found.filter { $0.repair != nil }
    }
}

extension Finding {
    /// The path below the export root, as the tests name entries.
    var relativePath: String {
        String(decoding: Array(components.joined(separator: [UInt8(ascii: "/")])), as: UTF8.self)
    }
}
