import Testing
@testable import VirtFSCore
import VirtFSTestSupport

/// Byte-level vectors QEMU 7.2 wrote for a Linux 6.1 guest, as recorded in
/// ../shared/docs/virtfs-formats.md (guest commands in each test's name), and re-captured by
/// tests/qemu/capture-golden into testdata/golden/.
@Suite struct MappedXattrVectors {
    @Test("chown 1234:5678 + chmod 4755 reads back as 1234, 5678 and a setuid regular file")
    func chownChmod() {
        #expect(MappedXattrCodec.decodeID(Bytes.fromHex("d2040000")) == .value(1234, .xattr))
        #expect(MappedXattrCodec.decodeID(Bytes.fromHex("2e160000")) == .value(5678, .xattr))
        #expect(MappedXattrCodec.decodeMode(Bytes.fromHex("ed890000")) == .value(0o104755, .xattr))
    }

    @Test("mknod c 1 3 stores mode 020644 and rdev makedev(1,3)")
    func mknod() {
        #expect(MappedXattrCodec.decodeMode(Bytes.fromHex("a4210000")) == .value(0o020644, .xattr))
        #expect(MappedXattrCodec.decodeRdev(Bytes.fromHex("0301000000000000")) == .value(DeviceNumber(major: 1, minor: 3), .xattr))
    }

    @Test("symlink and mkdir modes carry their file type")
    func typedModes() {
        #expect(MappedXattrCodec.decodeMode(Bytes.fromHex("ffa10000")) == .value(0o120777, .xattr))
        #expect(MappedXattrCodec.decodeMode(Bytes.fromHex("ed410000")) == .value(0o040755, .xattr))
    }

    @Test("encoding is the exact inverse of decoding", arguments: [
        ("d2040000", "ed890000", "0301000000000000"),
        ("00000000", "ffa10000", "ffffffff00000000"),
        ("ffffffff", "a4210000", "0000000000000000"),
    ])
    func roundTrip(uid: String, mode: String, rdev: String) throws {
        guard case .value(let u, _) = MappedXattrCodec.decodeID(Bytes.fromHex(uid)),
              case .value(let m, _) = MappedXattrCodec.decodeMode(Bytes.fromHex(mode)),
              case .value(let d, _) = MappedXattrCodec.decodeRdev(Bytes.fromHex(rdev)) else {
            Issue.record("vector did not decode")
            return
        }
        #expect(Bytes.hex(MappedXattrCodec.encodeID(u)) == uid)
        #expect(Bytes.hex(MappedXattrCodec.encodeMode(m)) == mode)
        // Only the low 32 bits reach a Linux guest, so compare through the guest's decoding.
        #expect(DeviceNumber(guestKernel: Bytes.readLittle(MappedXattrCodec.encodeRdev(d)[...], as: UInt64.self)) == d)
    }

    @Test("macOS hosts' 2-byte mode and 4-byte Darwin rdev are read and reported as such")
    func macOSLayout() {
        #expect(MappedXattrCodec.decodeMode([0xa4, 0x21]) == .value(0o020644, .xattrMacOS))
        // Darwin dev_t: major << 24 | minor.
        #expect(MappedXattrCodec.decodeRdev([0x03, 0x00, 0x00, 0x01]) == .value(DeviceNumber(major: 1, minor: 3), .xattrMacOS))
    }

    @Test("a value shorter than its field is undefined, a longer or empty one is ignored by QEMU")
    func wrongLengths() {
        if case .undefined = MappedXattrCodec.decodeID([1, 2, 3]) {} else { Issue.record("3-byte uid should be undefined") }
        if case .ignored = MappedXattrCodec.decodeID([1, 2, 3, 4, 5]) {} else { Issue.record("5-byte uid should be ignored") }
        if case .ignored = MappedXattrCodec.decodeID([]) {} else { Issue.record("empty uid should be ignored") }
        if case .undefined = MappedXattrCodec.decodeMode([1, 2, 3]) {} else { Issue.record("3-byte mode should be undefined") }
        if case .undefined = MappedXattrCodec.decodeRdev([1, 2, 3, 4, 5, 6]) {} else { Issue.record("6-byte rdev should be undefined") }
        if case .ignored = MappedXattrCodec.decodeRdev(Array(repeating: 0, count: 9)) {} else { Issue.record("9-byte rdev should be ignored") }
    }
}

@Suite struct MappedFileVectors {
    @Test("mknod d/c c 1 3 metadata decodes and re-encodes byte for byte")
    func mknodFile() {
        let bytes = Array("virtfs.uid=0\nvirtfs.gid=0\nvirtfs.mode=8612\nvirtfs.rdev=259\n".utf8)
        let m = MappedFileMetadata.parse(bytes)
        #expect(m.uid == 0 && m.gid == 0 && m.mode == 8612 && m.rdev == 259)
        #expect(m.deviations.isEmpty)
        #expect(m.serialized() == bytes)
        #expect(UInt32(bitPattern: m.mode!) == 0o020644)
        #expect(DeviceNumber(guestKernel: UInt64(UInt32(bitPattern: m.rdev!))) == DeviceNumber(major: 1, minor: 3))
    }

    @Test("chown 7:8 of the export root writes only uid and gid")
    func rootChown() {
        let bytes = Array("virtfs.uid=7\nvirtfs.gid=8\n".utf8)
        let m = MappedFileMetadata.parse(bytes)
        #expect(m == MappedFileMetadata(uid: 7, gid: 8))
        #expect(m.serialized() == bytes)
    }

    @Test("ids and device numbers above 2^31 are stored negative and read back right")
    func negativeValues() {
        let m = MappedFileMetadata.parse(Array("virtfs.uid=-294967296\nvirtfs.rdev=-2147483392\n".utf8))
        #expect(UInt32(bitPattern: m.uid!) == 4_000_000_000)
        #expect(DeviceNumber(guestKernel: UInt64(UInt32(bitPattern: m.rdev!))) == DeviceNumber(major: 1, minor: 524_288))
        #expect(m.deviations.isEmpty)
    }

    @Test("makedev 4095:1048575 is -1, which QEMU never writes")
    func unsetDevice() {
        let attributes = GuestAttributes(type: .characterDevice, permissions: 0o600, uid: 0, gid: 0,
                                         rdev: DeviceNumber(major: 4095, minor: 1_048_575))
        let m = MappedFileCodec.metadata(for: attributes)
        #expect(m.rdev == -1)
        #expect(!String(decoding: m.serialized(), as: UTF8.self).contains("rdev"))
    }

    @Test("atoi semantics: white space, signs, trailing garbage, overflow", arguments: [
        ("virtfs.uid=42\n", Int32(42)), ("virtfs.uid= 42\n", 42), ("virtfs.uid=+42\n", 42),
        ("virtfs.uid=42abc\n", 42), ("virtfs.uid=abc\n", 0), ("virtfs.uid=\n", 0),
        ("virtfs.uid=99999999999999999999\n", -1), ("virtfs.uid=4294967296\n", 0),
        ("virtfs.uidX5\n", 5), ("virtfs.uid\n", 0),
        // glibc's atoi on each: strtol clamps to LONG_MIN/LONG_MAX, then int keeps the low 32 bits.
        ("virtfs.uid=-4294967297\n", -1), ("virtfs.uid=-9223372036854775807\n", 1),
        ("virtfs.uid=-99999999999999999999\n", 0), ("virtfs.uid=9223372036854775807\n", -1),
        ("virtfs.uid=18446744073709551617\n", -1),
    ])
    func atoi(line: String, expected: Int32) {
        #expect(MappedFileMetadata.parse(Array(line.utf8)).uid == expected)
    }

    @Test("every deviation QEMU silently misreads is reported", arguments: [
        ("virtfs.uid=abc\n", "not a plain decimal"),
        ("virtfs.uid=1\nvirtfs.uid=2\n", "duplicate"),
        ("virtfs.gid=1\nvirtfs.uid=2\n", "order"),
        ("virtfs.uid=1", "no newline"),
        ("hello=1\n", "unknown line"),
        ("virtfs.uid:1\n", "not followed by '='"),
        ("virtfs.uid=007\n", "not a plain decimal"),
        ("virtfs.uid=-1\n", "unset"),
        ("virtfs.uid=1\0\n", "NUL"),
    ])
    func deviations(text: String, fragment: String) {
        let m = MappedFileMetadata.parse(Array(text.utf8))
        #expect(m.deviations.contains { $0.message.contains(fragment) }, "\(m.deviations)")
    }

    @Test("a line over 99 bytes is read by QEMU as two lines, and flagged")
    func longLine() {
        let text = "virtfs.uid=1" + String(repeating: " ", count: 100) + "\nvirtfs.gid=2\n"
        let m = MappedFileMetadata.parse(Array(text.utf8))
        #expect(m.uid == 1 && m.gid == 2)
        #expect(m.deviations.contains { $0.message.contains("longer than 99") })
    }
}

@Suite struct ACLVectors {
    @Test("the kernel's ACL blob decodes, prints like getfacl, and re-encodes byte for byte")
    func blob() throws {
        // setfacl -m u:1000:rwx on a 0770 directory, as stored in user.virtfs.system.posix_acl_access.
        let hex = "0200000001000700ffffffff02000700e803000004000700ffffffff10000700ffffffff20000000ffffffff"
        let acl = try ACL(xattr: Bytes.fromHex(hex)!)
        #expect(acl.entries.count == 5)
        #expect(acl.entries[1] == ACL.Entry(tag: .user, permissions: 7, qualifier: 1000))
        #expect(Bytes.hex(acl.xattrValue) == hex)
        #expect(try acl.text() == "user::rwx\nuser:1000:rwx\ngroup::rwx\nmask::rwx\nother::---")
        #expect(acl.isValid)
    }

    @Test("effective rights are shown when the mask narrows an entry")
    func effective() throws {
        let acl = try ACL(text: "u::rwx,u:1000:rwx,g::r-x,m::r--,o::---")
        #expect(try acl.text().contains("user:1000:rwx\t#effective:r--"))
    }

    @Test("corrupt ACL blobs are rejected with the reason", arguments: [
        "02000000010007", "0300000001000700ffffffff", "0200000040000700ffffffff", "0200000001000f00ffffffff",
    ])
    func corrupt(hex: String) {
        #expect(throws: VirtFSError.self) { try ACL(xattr: Bytes.fromHex(hex)!) }
    }
}

@Suite struct DeviceNumbers {
    @Test("glibc makedev and the guest kernel's 32-bit view agree for 12-bit majors", arguments: [
        (UInt32(1), UInt32(3)), (8, 0), (4095, 1_048_575), (259, 65536), (0, 0),
    ])
    func encodings(major: UInt32, minor: UInt32) {
        let d = DeviceNumber(major: major, minor: minor)
        #expect(DeviceNumber(glibc: d.glibc) == d)
        #expect(DeviceNumber(guestKernel: d.glibc) == d)
    }
}
