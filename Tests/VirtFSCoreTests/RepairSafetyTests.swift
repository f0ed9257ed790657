import Glibc
import Testing
import VirtFSTestSupport
@testable import VirtFSCore

/// The primitives repairs and edits rely on to be what they claim: which inodes have names
/// outside the tree, and which views a model can store exactly as they are read.
@Suite struct RepairSafety {
    @Test("the link census counts an inode's names inside the tree, and refuses one with a name outside")
    func census() throws {
        let dir = TemporaryDirectory()
        mkdir(dir.path + "/t", 0o755)
        mkdir(dir.path + "/t/sub", 0o755)
        close(open(dir.path + "/outside", O_CREAT | O_WRONLY, 0o600))
        close(open(dir.path + "/t/inside", O_CREAT | O_WRONLY, 0o600))
        link(dir.path + "/outside", dir.path + "/t/sub/planted")
        link(dir.path + "/t/inside", dir.path + "/t/sub/second")
        let census = LinkCensus(root: try Walker.exportRoot(dir.file("t")))
        let planted = try Sys.stat(AT_FDCWD, dir.file("t/sub/planted"))
        let inside = try Sys.stat(AT_FDCWD, dir.file("t/inside"))
        #expect(census.namesOutside(planted) == 1)
        #expect(census.namesInside(planted) == [[Array("sub".utf8), Array("planted".utf8)]])
        #expect(census.namesOutside(inside) == 0)
        #expect(census.namesInside(inside).count == 2)
        #expect(throws: VirtFSError.self) { try census.refuseOutside(planted, path: dir.file("t/sub/planted"), operation: "st_nlink") }
        try census.refuseOutside(inside, path: dir.file("t/inside"), operation: "st_nlink")
        try LinkCensus(root: census.root, allowOutside: true).refuseOutside(planted, path: [], operation: "st_nlink")
    }

    @Test("a view is kept exactly only when its model can write it back as it is read")
    func keeps() throws {
        let dir = TemporaryDirectory()
        close(open(dir.path + "/f", O_CREAT | O_WRONLY, 0o644))
        let host = try Sys.stat(AT_FDCWD, dir.file("f"))
        let plain = GuestAttributes(type: .regular, permissions: 0o644, uid: 1000, gid: 1000)
        var unsetUID = plain
        unsetUID.uid = UInt32.max
        var rdevOnFile = plain
        rdevOnFile.rdev = DeviceNumber(major: 1, minor: 3)
        let device = GuestAttributes(type: .characterDevice, permissions: 0o666, uid: 0, gid: 0, rdev: DeviceNumber(major: 1, minor: 3))
        let file = SecurityModel.mappedFile.codec, xattr = SecurityModel.mappedXattr.codec
        #expect(file.keeps(plain, host: host) && xattr.keeps(plain, host: host))
        #expect(!file.keeps(unsetUID, host: host), "mapped-file cannot write uid -1: QEMU reads it as unset")
        #expect(xattr.keeps(unsetUID, host: host))
        #expect(!file.keeps(rdevOnFile, host: host) && !xattr.keeps(rdevOnFile, host: host))
        #expect(file.keeps(device, host: host) && xattr.keeps(device, host: host))
    }
}
