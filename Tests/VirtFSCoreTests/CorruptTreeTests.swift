import Glibc
import CVirtFS
import Testing
import VirtFSTestSupport
@testable import VirtFSCore

/// Broken metadata gives a precise per-entry error naming the entry, the attribute or file and
/// what is wrong; the walk goes on and nothing is written.
@Suite struct CorruptTrees {
    func file(_ dir: TemporaryDirectory, _ name: String, xattrs: [String: String] = [:]) {
        let fd = open(dir.path + "/" + name, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        for (key, hex) in xattrs {
            let value = Bytes.fromHex(hex)!
            _ = value.withUnsafeBytes { setxattr(dir.path + "/" + name, key, $0.baseAddress, value.count, 0) }
        }
    }

    func errors(_ dir: TemporaryDirectory, _ model: SecurityModel) throws -> [String: [String]] {
        let (_, errors) = try decodeTree(dir.path, model: model)
        var byEntry: [String: [String]] = [:]
        for e in errors {
            let name = String(decoding: e.path, as: UTF8.self).replacingOccurrences(dir.path + "/", "")
            byEntry[name, default: []].append(e.description)
        }
        return byEntry
    }

    @Test("mapped-xattr: wrong lengths, missing type bits, contradicting types and bad ACLs are each reported")
    func mappedXattr() throws {
        let dir = TemporaryDirectory()
        file(dir, "ok", xattrs: ["user.virtfs.mode": "a4810000"])
        file(dir, "short-uid", xattrs: ["user.virtfs.uid": "010203"])
        file(dir, "long-mode", xattrs: ["user.virtfs.mode": "a481000000"])
        file(dir, "no-type", xattrs: ["user.virtfs.mode": "a4010000"])
        file(dir, "dir-on-file", xattrs: ["user.virtfs.mode": "ed410000"])
        file(dir, "short-rdev", xattrs: ["user.virtfs.mode": "a4210000", "user.virtfs.rdev": "030100000000"])
        file(dir, "bad-acl", xattrs: ["user.virtfs.system.posix_acl_access": "0200000040000700ffffffff"])
        let found = try errors(dir, .mappedXattr)
        #expect(found["ok"] == nil)
        #expect(found["short-uid"]?.first?.contains("user.virtfs.uid: value is 3 bytes; expected 4") == true, "\(found)")
        #expect(found["long-mode"]?.first?.contains("value is 5 bytes") == true)
        #expect(found["no-type"]?.first?.contains("has no valid file type") == true)
        #expect(found["dir-on-file"]?.first?.contains("metadata says dir but the host object is a file") == true)
        #expect(found["short-rdev"]?.first?.contains("user.virtfs.rdev: value is 6 bytes") == true)
        #expect(found["bad-acl"]?.first?.contains("unknown ACL tag 0x40") == true)
        #expect(found.count == 6)
    }

    @Test("mapped-file: garbage lines, stale metadata, symlinked and directory metadata are each reported")
    func mappedFile() throws {
        let dir = TemporaryDirectory()
        let meta = dir.sub(".virtfs_metadata")
        func metadata(_ name: String, _ text: String) {
            let fd = open(meta + "/" + name, O_CREAT | O_WRONLY, 0o600)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        file(dir, "ok"); metadata("ok", "virtfs.uid=0\nvirtfs.gid=0\nvirtfs.mode=33188\n")
        file(dir, "garbage"); metadata("garbage", "virtfs.uid=12x\nhello\n")
        file(dir, "no-type"); metadata("no-type", "virtfs.mode=420\n")
        metadata("missing", "virtfs.uid=0\n")
        file(dir, "linked"); symlink("/etc/passwd", meta + "/linked")
        file(dir, "dir-meta"); mkdir(meta + "/dir-meta", 0o700)
        let found = try errors(dir, .mappedFile)
        #expect(found["ok"] == nil)
        #expect(found["garbage"]?.contains { $0.contains("parse .virtfs_metadata/garbage (byte 11): line 1: virtfs.uid value \"12x\" is not a plain decimal int; QEMU reads 12") } == true, "\(found)")
        #expect(found["garbage"]?.contains { $0.contains("unknown line \"hello") } == true)
        #expect(found["no-type"]?.first?.contains("virtfs.mode=420 (0644) has no valid file type") == true)
        #expect(found[".virtfs_metadata/missing"]?.first?.contains("metadata for a missing entry") == true)
        #expect(found[".virtfs_metadata/linked"]?.first?.contains("metadata file is a symlink; QEMU ignores it") == true)
        #expect(found[".virtfs_metadata/dir-meta"]?.first?.contains("metadata file is a dir") == true)
    }

    @Test("reading a corrupt tree changes nothing in it")
    func readOnly() throws {
        let dir = TemporaryDirectory()
        file(dir, "short-uid", xattrs: ["user.virtfs.uid": "010203"])
        var before = Glibc.stat(), after = Glibc.stat()
        lstat(dir.path + "/short-uid", &before)
        _ = try decodeTree(dir.path, model: .mappedXattr)
        lstat(dir.path + "/short-uid", &after)
        #expect(before.st_ctim.tv_nsec == after.st_ctim.tv_nsec && before.st_ctim.tv_sec == after.st_ctim.tv_sec)
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.range(of: target) {
            out += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        guard !target.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}
