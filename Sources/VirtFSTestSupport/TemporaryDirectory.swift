import Glibc
import VirtFSCore

/// A fresh directory under $TMPDIR (mode 0755, so that an unprivileged QEMU user can reach what
/// tests put in it), removed when the test is done with it.
public final class TemporaryDirectory {
    public let path: String
    public var bytes: [UInt8] { Array(path.utf8) }

    public init() {
        var template = Array("\(String(cString: getenv("TMPDIR") ?? strdup("/tmp")))/virtfs-test.XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        chmod(path, 0o755)
    }

    deinit {
        _ = system("rm -rf '\(path)'")
    }

    /// Makes the directory NAME inside, and returns its path.
    public func sub(_ name: String) -> String {
        let p = path + "/" + name
        mkdir(p, 0o755)
        return p
    }

    /// The path of NAME inside, as bytes.
    public func file(_ name: String) -> [UInt8] { Array((path + "/" + name).utf8) }

    /// The whole content of NAME inside.
    public func read(_ name: String) throws -> [UInt8] {
        try readBytes(path + "/" + name)
    }
}

/// The whole content of a file the test names.
public func readBytes(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw VirtFSError.system("open", path: Array(path.utf8), errno: errno) }
    defer { close(fd) }
    return try Sys.readAll(fd, name: Array(path.utf8), limit: 1 << 28).bytes
}

/// The repository's testdata directory, found from the test source that asks.
public func testdataPath(_ relative: String, from file: String = #filePath) -> String {
    "/" + file.split(separator: "/").dropLast(3).joined(separator: "/") + "/testdata/" + relative
}
