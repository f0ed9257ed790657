import CVirtFS
import Glibc
import Synchronization
import Testing
@testable import VirtFSCore
import VirtFSTestSupport

/// The xattr wrappers reach an entry either with the *xattrat calls (Linux 6.13+) or through
/// /proc/self/fd/DIRFD/NAME; both must answer alike and neither may follow a symlink.
@Suite(.serialized)
struct XattrAccessTests {
    enum Route: String, CaseIterable, CustomTestStringConvertible {
        case xattrAt, procPath
        var testDescription: String { rawValue }
    }

    /// The value of an xattr read by path with glibc, independently of the wrappers.
    func raw(_ path: String, _ attr: String) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = lgetxattr(path, attr, &buf, buf.count)
        return n < 0 ? nil : Array(buf[0..<n])
    }

    @Test("xattrs are read, listed, written and removed below a directory fd without following a symlink",
          arguments: Route.allCases)
    func neverFollows(route: Route) throws {
        Sys.xattrAtUnusable.store(route == .procPath, ordering: .relaxed)
        defer { Sys.xattrAtUnusable.store(false, ordering: .relaxed) }
        let tmp = TemporaryDirectory()
        let file = tmp.path + "/f"
        close(open(file, O_CREAT | O_WRONLY, 0o644))
        #expect(symlink("f", tmp.path + "/l") == 0)
        #expect(mkdir(tmp.path + "/d", 0o755) == 0)
        let dir = try DirectoryContext.open(path: tmp.bytes)
        let f = Array("f".utf8), l = Array("l".utf8)

        try Sys.setXattr(dir.fd, f, raw: Array("user.a".utf8), [1, 2, 3])
        #expect(raw(file, "user.a") == [1, 2, 3])
        #expect(try Sys.getXattr(dir.fd, f, raw: Array("user.a".utf8)) == [1, 2, 3])
        #expect(try Sys.getXattr(dir.fd, f, raw: Array("user.missing".utf8)) == nil)
        #expect(try Sys.listXattrs(dir.fd, f).contains(Array("user.a".utf8)))
        // A value larger than the first buffer goes through the ERANGE probe.
        let big = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        try Sys.setXattr(dir.fd, f, raw: Array("user.big".utf8), big)
        #expect(try Sys.getXattr(dir.fd, f, raw: Array("user.big".utf8)) == big)

        // Through the symlink: its own (empty) xattrs, never the target's.
        #expect(try Sys.getXattr(dir.fd, l, raw: Array("user.a".utf8)) == nil)
        #expect(!(try Sys.listXattrs(dir.fd, l).contains(Array("user.a".utf8))))
        #expect(throws: VirtFSError.self) { try Sys.setXattr(dir.fd, l, raw: Array("user.b".utf8), [9]) }
        #expect(raw(file, "user.b") == nil)
        #expect(throws: VirtFSError.self) { try Sys.removeXattr(dir.fd, l, raw: Array("user.a".utf8)) }
        #expect(raw(file, "user.a") == [1, 2, 3])

        // `.` is the directory itself (an export root).
        try Sys.setXattr(dir.fd, [UInt8(ascii: ".")], raw: Array("user.root".utf8), [7])
        #expect(raw(tmp.path, "user.root") == [7])
        try Sys.removeXattr(dir.fd, f, raw: Array("user.a".utf8))
        #expect(raw(file, "user.a") == nil)
        try Sys.removeXattr(dir.fd, f, raw: Array("user.a".utf8))

        // A name with a NUL byte would be cut short by the kernel: refused before any call.
        #expect(throws: VirtFSError.self) { try Sys.getXattr(dir.fd, [UInt8(ascii: "f"), 0, UInt8(ascii: "x")], raw: Array("user.a".utf8)) }
        #expect(throws: VirtFSError.self) { try Sys.stat(dir.fd, [UInt8(ascii: "f"), 0]) }

        // A symlink's real EPERM is an answer, not a sign that the kernel refuses *xattrat.
        #expect(Sys.xattrAtUnusable.load(ordering: .relaxed) == (route == .procPath))
    }

}

extension XattrAccessTests {
    @Test("a failed xattr call names the attribute by its bytes, quoted like a path, even when they are not UTF-8")
    func errorsKeepRawAttributeNames() throws {
        let tmp = TemporaryDirectory()
        let dir = try DirectoryContext.open(path: tmp.bytes)
        let attribute = Array("user.".utf8) + [0xff]
        var failures: [VirtFSError] = []
        do { try Sys.setXattr(dir.fd, Array("missing".utf8), raw: attribute, [1]) } catch { failures.append(error) }
        do { _ = try Sys.getXattr(dir.fd, Array("missing".utf8), raw: attribute) } catch { failures.append(error) }
        do { try Sys.removeXattr(dir.fd, Array("missing".utf8), raw: attribute) } catch { failures.append(error) }
        #expect(failures.count == 3)
        for failure in failures {
            #expect(failure.errno == ENOENT)
            #expect(failure.attribute == attribute)
            #expect(failure.description.contains(" " + Bytes.shellEscaped(attribute) + ": "), "\(failure)")
            #expect(!failure.description.contains("\u{FFFD}"), "\(failure)")
        }
    }
}

extension XattrAccessTests {
    /// Every wrapper that takes a name checks it (`Sys.retry`): without the check the kernel
    /// would act on the entry the name up to the NUL spells, here `f` and `d`.
    @Test("a name with a NUL byte is refused by every call that changes an entry, and the entry it would reach is untouched")
    func nulNamesNeverReachTheKernel() throws {
        let tmp = TemporaryDirectory()
        close(open(tmp.path + "/f", O_CREAT | O_WRONLY, 0o644))
        mkdir(tmp.path + "/d", 0o755)
        let dir = DirectoryContext(fd: open(tmp.path, O_RDONLY | O_DIRECTORY), path: Array(tmp.path.utf8))
        let f0 = [UInt8(ascii: "f"), 0, UInt8(ascii: "x")], d0 = [UInt8(ascii: "d"), 0]
        func refused(_ body: () throws(VirtFSError) -> Void) {
            do { try body(); Issue.record("a NUL name was not refused") } catch {
                #expect(error.errno == nil && error.detail.contains("NUL byte"), "\(error)")
            }
        }
        refused { () throws(VirtFSError) in try Sys.unlink(dir.fd, f0) }
        refused { () throws(VirtFSError) in try Sys.unlink(dir.fd, d0, directory: true) }
        refused { () throws(VirtFSError) in try Sys.rename(dir.fd, Array("f".utf8), dir.fd, d0) }
        refused { () throws(VirtFSError) in try Sys.rename(dir.fd, Array("f".utf8), dir.fd, d0, mode: .replace) }
        refused { () throws(VirtFSError) in try Sys.chown(dir.fd, f0, 65534, 65534) }
        refused { () throws(VirtFSError) in try Sys.setTimes(dir.fd, f0, atime: Timestamp(seconds: 1, nanoseconds: 0), mtime: Timestamp(seconds: 1, nanoseconds: 0)) }
        refused { () throws(VirtFSError) in try Sys.setXattr(dir.fd, f0, raw: Array("user.a".utf8), [1]) }
        refused { () throws(VirtFSError) in try Sys.setXattr(dir.fd, Array("f".utf8), raw: Array("user.a\0b".utf8), [1]) }
        refused { () throws(VirtFSError) in try Sys.removeXattr(dir.fd, f0, raw: Array("user.a".utf8)) }
        refused { () throws(VirtFSError) in _ = try Sys.listXattrs(dir.fd, f0) }
        var st = Glibc.stat()
        #expect(lstat(tmp.path + "/f", &st) == 0 && st.st_uid == getuid() && st.st_mtim.tv_sec > 1, "f was changed")
        #expect(lstat(tmp.path + "/d", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR, "d was removed or replaced")
        #expect(raw(tmp.path + "/f", "user.a") == nil)
    }
}
