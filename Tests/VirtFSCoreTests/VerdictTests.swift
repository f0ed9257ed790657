import CVirtFS
import Glibc
import Testing
import VirtFSTestSupport
@testable import VirtFSCore

/// Model detection and the whole-tree verdicts: never resting on one entry, and telling a
/// stripped mapped tree from a genuine passthrough one.
@Suite struct Verdicts {
    func write(_ dir: TemporaryDirectory, _ name: String, _ content: String, xattrs: [String: [UInt8]] = [:]) {
        let path = dir.path + "/" + name
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        _ = content.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, content.utf8.count) }
        close(fd)
        for (key, value) in xattrs {
            _ = value.withUnsafeBytes { lsetxattr(path, key, $0.baseAddress, value.count, 0) }
        }
    }

    func census(_ dir: TemporaryDirectory) throws -> (ModelDetection, TreeCensus) {
        let root = try Walker.exportRoot(dir.bytes)
        let detection = ModelDetection.detect(in: root.directory)
        return (detection, TreeCensus.take(root, rule: LossRule(detection)))
    }

    @Test("one user.virtfs.* xattr among many entries does not make a tree mapped-xattr; a quarter does")
    func detectionNeedsAShare() throws {
        let dir = TemporaryDirectory()
        for i in 0..<12 { write(dir, "f\(i)", "x\n") }
        write(dir, "forged", "x\n", xattrs: [VirtfsXattr.uid: [0, 0, 0, 0]])
        var (detection, _) = try census(dir)
        #expect(detection.model == .passthrough)
        #expect(detection.evidence[.mappedXattr]?.count == 1)
        for i in 0..<4 { write(dir, "f\(i)", "x\n", xattrs: [VirtfsXattr.mode: [0xa4, 0x81, 0, 0]]) }
        (detection, _) = try census(dir)
        #expect(detection.model == .mappedXattr)
    }

    @Test("a recorded conversion decides detection, and reads back as the conversion it records")
    func interrupted() throws {
        let dir = TemporaryDirectory()
        write(dir, ".virtfs-convert-state", "virtfs-convert from=mapped-xattr to=mapped-file\n")
        let detection = ModelDetection.detect(in: try Walker.exportRoot(dir.bytes).directory)
        #expect(detection.outcome == .interrupted(ConversionRecord(from: .mappedXattr, to: .mappedFile)))
        #expect(throws: VirtFSError.interruptedConversion(ConversionRecord(from: .mappedXattr, to: .mappedFile), path: dir.bytes)) {
            try OperandResolver(root: nil).model(for: try Walker.exportRoot(dir.bytes), explicit: nil)
        }
        #expect(ConversionRecord.parse(Array("virtfs-convert from=passthrough\n".utf8)) == nil)
    }

    @Test("files whose data names an entry of the tree, with no metadata anywhere, make a stripped tree")
    func stripped() throws {
        let dir = TemporaryDirectory()
        mkdir(dir.path + "/bin", 0o700)
        mkdir(dir.path + "/dev", 0o700)
        write(dir, "bin/busybox", "#!/bin/sh\n")
        write(dir, "bin/sh", "busybox")
        write(dir, "bin/ash", "/bin/busybox")
        write(dir, "dev/null", "")
        write(dir, "bin/note", "no such file")
        let (_, c) = try census(dir)
        #expect(c.entries == 8)
        #expect(c.shaped == 3)
        #expect(TreeVerdict.stripped(c))
        let verdicts = TreeVerdict.judge(c, model: .passthrough, declared: nil, rootOwner: 65534, qemuUserGiven: false)
        #expect(verdicts.first?.name == "metadata-lost")
        #expect(verdicts.first?.summary.hasPrefix("metadata lost on 8 of 8 entries; the guest would see /bin/") == true)
    }

    @Test("a passthrough tree with real symlinks is not stripped, and data naming nothing in the tree is not a symlink target")
    func genuinePassthrough() throws {
        let dir = TemporaryDirectory()
        mkdir(dir.path + "/bin", 0o755)
        write(dir, "bin/busybox", "#!/bin/sh\n")
        symlink("busybox", dir.path + "/bin/sh")
        symlink("busybox", dir.path + "/bin/ash")
        write(dir, "bin/up", "../../etc")
        let (_, c) = try census(dir)
        #expect(c.shaped == 0)
        #expect(!TreeVerdict.stripped(c))
        #expect(TreeVerdict.judge(c, model: .passthrough, declared: nil, rootOwner: 0, qemuUserGiven: false).isEmpty)
    }

    @Test("a named model the tree contradicts is a verdict of its own")
    func contradiction() {
        var c = TreeCensus()
        c.entries = 10
        c.carried[.mappedXattr] = 9
        let v = TreeVerdict.judge(c, model: .passthrough, declared: .passthrough, rootOwner: 0, qemuUserGiven: false)
        #expect(v == [.contradicts(declared: .passthrough, carried: .mappedXattr, count: 9, of: 10)])
        c.carried[.mappedXattr] = 1
        #expect(TreeVerdict.judge(c, model: .passthrough, declared: .passthrough, rootOwner: 0, qemuUserGiven: false).isEmpty)
    }

    @Test("a name with a terminal escape is quoted in a verdict; a printable one, UTF-8 included, is not")
    func quoting() {
        #expect(Bytes.shellEscaped(Array("/bin/sh".utf8)) == "/bin/sh")
        #expect(Bytes.shellEscaped(Array("/etc/caf\u{e9}".utf8)) == "/etc/caf\u{e9}")
        #expect(Bytes.shellEscaped(Array("/a\u{1b}[2Jb".utf8)) == "'/a'$'\\033''[2Jb'")
    }

    @Test("counts read as people read them", arguments: [(0, "0"), (999, "999"), (8475, "8,475"), (1234567, "1,234,567")])
    func number(n: Int, text: String) {
        #expect(TreeVerdict.number(n) == text)
    }
}
