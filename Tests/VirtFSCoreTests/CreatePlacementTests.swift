import Glibc
import Testing
@testable import VirtFSCore
import VirtFSTestSupport

/// What a mapped codec's `create` leaves on the host: the placement's modes exactly, whatever
/// creation gave, and a metadata file of its own.
@Suite struct CreatePlacement {
    let f = Array("f".utf8), d = Array("d".utf8)

    @Test("a mapped object gets exactly the placement's mode where creation gives less (a default ACL of its directory)",
          arguments: [SecurityModel.mappedXattr, .mappedFile])
    func modeUnderDefaultACL(model: SecurityModel) throws {
        let scratch = TemporaryDirectory()
        let root = try Walker.exportRoot(Array(scratch.sub("tree").utf8))
        // Creation under it grants the group and others nothing, whatever the umask.
        let acl = ACL(entries: [.init(tag: .userObj, permissions: 7), .init(tag: .groupObj, permissions: 0), .init(tag: .other, permissions: 0)])
        try Sys.setXattr(root.directory.fd, Array(".".utf8), raw: Array(HostACLXattr.default.utf8), acl.xattrValue)
        let placement = HostPlacement(fileMode: 0o644, directoryMode: 0o755)
        try model.codec.create(GuestAttributes(type: .regular, permissions: 0o640, uid: 1, gid: 2), named: f, in: root.directory,
                               content: .bytes(Array("x".utf8)), placement: placement)
        try model.codec.create(GuestAttributes(type: .directory, permissions: 0o700, uid: 3, gid: 4), named: d, in: root.directory,
                               content: .empty, placement: placement)
        #expect(try Sys.stat(root.directory.fd, f).permissions == 0o644)
        #expect(try Sys.stat(root.directory.fd, d).permissions == 0o755)
        let file = try model.codec.decode(HostEntry(directory: root.directory, name: f, path: f)).attributes
        let dir = try model.codec.decode(HostEntry(directory: root.directory, name: d, path: d)).attributes
        #expect(file.type == .regular && file.permissions == 0o640 && file.uid == 1 && file.gid == 2)
        #expect(dir.type == .directory && dir.permissions == 0o700 && dir.uid == 3 && dir.gid == 4)
        if model == .mappedFile {
            #expect(try Sys.stat(root.directory.metadataDirectory()!, f).permissions == 0o600)
        }
    }

    @Test("a new mapped-file object whose name has a stale metadata file gets its own metadata")
    func staleMetadata() throws {
        let scratch = TemporaryDirectory()
        let tree = scratch.sub("tree")
        _ = scratch.sub("tree/.virtfs_metadata")
        let stale = open(tree + "/.virtfs_metadata/f", O_WRONLY | O_CREAT, 0o600)
        _ = write(stale, "virtfs.uid=7\nvirtfs.gid=7\n", 26)
        close(stale)
        let root = try Walker.exportRoot(Array(tree.utf8))
        try MappedFileCodec().create(GuestAttributes(type: .fifo, permissions: 0o640, uid: 3, gid: 4), named: f, in: root.directory,
                                     content: .empty, placement: HostPlacement())
        let view = try MappedFileCodec().decode(HostEntry(directory: root.directory, name: f, path: f))
        #expect(view.type == .fifo && view.attributes.permissions == 0o640 && view.attributes.uid == 3 && view.attributes.gid == 4)
        #expect(try scratch.read("tree/.virtfs_metadata/f") == Array("virtfs.uid=3\nvirtfs.gid=4\nvirtfs.mode=\(0o010640)\nvirtfs.rdev=0\n".utf8))
    }
}
