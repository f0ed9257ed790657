import Glibc
import Testing
@testable import VirtFSCore
import VirtFSTestSupport

/// What virtfs-convert must never do without a word: lose state that one name of a hard link
/// carries for all of them, write a value the target model reads back as something else, write
/// a copy into the tree it copies, or leave an output root QEMU's user cannot enter.
@Suite struct ConversionSafety {
    static let pairs: [(SecurityModel, SecurityModel, Bool)] = Conversions.pairs

    /// A file with three names in two directories, with an ACL (not under none, which shows
    /// none) and a user xattr.
    func hardLinkSpec(_ models: [SecurityModel]) throws -> TreeSpec {
        let acl = models.contains(.none) ? "" : " acl=\"u::rw-,u:1000:r--,g::r--,m::r--,o::---\""
        return try TreeSpec(text: """
            dir  .  0755 0:0
            dir  d  0755 0:0
            file a  0640 1000:50 content="shared"\(acl) xattr.user.note="kept"
            link b  a
            link d/c a
            file single 0600 0:0 content="x"
            """)
    }

    @Test("every name of a hard link keeps the ACL and xattrs after every conversion, with no forged-value warning", arguments: pairs)
    func hardLinkKeepsItsState(from: SecurityModel, to: SecurityModel, inPlace: Bool) throws {
        let dir = TemporaryDirectory()
        let source = dir.sub("source")
        let placement = HostPlacement(owner: (65534, 65534))
        try hardLinkSpec([from, to]).materialize(at: Array(source.utf8), model: from, placement: placement)
        let before = try decodeTree(source, model: from).views
        var options = Converter.Options(from: from, to: to)
        options.placement = placement
        let converter = Converter(options: options)
        let root = try Walker.exportRoot(Array(source.utf8))
        var messages: [String] = []
        #expect(converter.preflight(root, inPlace: inPlace) { messages.append($0.description) } != nil, "\(messages)")
        func event(_ e: Converter.Event) {
            switch e {
            case .failed(let error), .dropped(let error): messages.append(error.description)
            default: break
            }
        }
        let result = inPlace ? source : dir.sub("output")
        let summary = inPlace ? try converter.inPlace(root, event: event)
            : converter.copy(root, into: try OutputDirectory.prepare(Array(result.utf8), copying: root), event: event)
        #expect(messages.isEmpty, "\(messages)")
        #expect(summary.failures == 0 && summary.dropped == 0)
        let (after, errors) = try decodeTree(result, model: to)
        #expect(errors.isEmpty, "\(errors)")
        let a = try #require(before[Array("a".utf8)])
        for name in ["a", "b", "d/c"] {
            let seen = try #require(after[Array(name.utf8)])
            #expect(seen.attributes == a.attributes, "\(name): \(seen.attributes) != \(a.attributes)")
            #expect(seen.host.nlink == 3, "\(name) keeps its three names")
        }
        if to != .mappedXattr {
            // No user.virtfs.* left on the shared inode for a guest of the new model to see.
            #expect(after[Array("a".utf8)]?.attributes.xattrs.map(\.name) == [Array("user.note".utf8)])
        }
    }

    func converter(_ from: SecurityModel, _ to: SecurityModel) -> Converter {
        var options = Converter.Options(from: from, to: to)
        options.allowDevices = true
        options.placement = HostPlacement(owner: (65534, 65534))
        return Converter(options: options)
    }

    func refusals(_ spec: String, in from: SecurityModel, to: SecurityModel, inPlace: Bool = true) throws -> [String] {
        let dir = TemporaryDirectory()
        let source = dir.sub("t")
        try TreeSpec(text: spec).materialize(at: Array(source.utf8), model: from, placement: HostPlacement(owner: (65534, 65534)))
        var messages: [String] = []
        let ok = converter(from, to).preflight(try Walker.exportRoot(Array(source.utf8)), inPlace: inPlace) { messages.append($0.description) } != nil
        #expect(ok == messages.isEmpty)
        return messages.map { $0.replacingOccurrences(source + "/", "") }
    }

    @Test("a device mapped-file would store as no rdev (4095:1048575) is refused, named")
    func unrepresentableDevice() throws {
        for from in [SecurityModel.mappedXattr, .passthrough] {
            let messages = try refusals("""
                dir . 0755 0:0
                char dev-max 0600 0:0 rdev=4095:1048575
                char dev-ok 0600 0:0 rdev=1:524288
                """, in: from, to: .mappedFile)
            #expect(messages == ["dev-max: convert: mapped-file cannot hold it: device 4095,1048575 is makedev() -1, which QEMU stores as no rdev: the guest would see 0,0"],
                    "\(from): \(messages)")
            // mapped-xattr keeps all 8 bytes.
            #expect(try refusals("dir . 0755 0:0\nchar dev-max 0600 0:0 rdev=4095:1048575", in: from, to: .mappedXattr).isEmpty)
        }
    }

    @Test("uid and gid 4294967295 are refused where they read back as something else")
    func unrepresentableIDs() throws {
        let spec = "dir . 0755 0:0\nfile u 0644 4294967295:0\nfile g 0644 0:4294967295"
        let toFile = try refusals(spec, in: .mappedXattr, to: .mappedFile)
        #expect(toFile.count == 2)
        #expect(toFile.contains { $0.hasPrefix("u: convert: mapped-file cannot hold it: uid 4294967295") })
        #expect(toFile.contains { $0.hasPrefix("g: convert: mapped-file cannot hold it: gid 4294967295") })
        let toPassthrough = try refusals(spec, in: .mappedXattr, to: .passthrough)
        #expect(toPassthrough.contains { $0.contains("u: convert: passthrough cannot hold it: uid 4294967295 is -1, which chown(2) reads as") })
        // mapped-xattr keeps all 32 bits.
        #expect(try refusals(spec, in: .passthrough, to: .mappedXattr).isEmpty)
    }

    @Test("a name mapped-file reserves, a symlink with xattrs, and a toolkit temporary name are refused")
    func unrepresentableNames() throws {
        let reserved = try refusals("dir . 0755 0:0\ndir .virtfs_metadata 0755 0:0", in: .passthrough, to: .mappedFile)
        #expect(reserved == [".virtfs_metadata: convert: mapped-file cannot hold it: the name is reserved by mapped-file for its metadata: QEMU hides it from the guest"])
        let symlink = try refusals("dir . 0755 0:0\nsymlink s 0777 0:0 target=x xattr.user.a=b", in: .mappedXattr, to: .passthrough)
        #expect(symlink.contains { $0.contains("s: convert: passthrough cannot hold it: a symlink with ACLs or user xattrs") })
        let fifo = try refusals("dir . 0755 0:0\nfifo p 0644 0:0 xattr.user.a=b", in: .mappedXattr, to: .passthrough)
        #expect(fifo == ["p: convert: passthrough cannot hold it: a fifo with user xattrs: Linux keeps user xattrs only on regular files and directories"])
        let temporary = try refusals("dir . 0755 0:0\nfile .virtfs-tools.1.tmp 0644 0:0", in: .mappedXattr, to: .mappedFile)
        #expect(temporary == [".virtfs-tools.1.tmp: convert: the name is one virtfs-tools builds under and removes as a leftover: rename it first"])
        // A copy only reads the tree: such a name is data to copy.
        #expect(try refusals("dir . 0755 0:0\nfile .virtfs-tools.1.tmp 0644 0:0", in: .mappedXattr, to: .mappedFile, inPlace: false).isEmpty)
    }

    @Test("a hard link with a name outside the tree is refused in place, not for a copy")
    func outsideLinks() throws {
        let dir = TemporaryDirectory()
        let source = dir.sub("t")
        try TreeSpec(text: "dir . 0755 0:0\nfile f 0644 0:0").materialize(at: Array(source.utf8), model: .mappedXattr, placement: HostPlacement())
        #expect(link(source + "/f", dir.path + "/outside") == 0)
        let root = try Walker.exportRoot(Array(source.utf8))
        var messages: [String] = []
        #expect(converter(.mappedXattr, .mappedFile).preflight(root) { messages.append($0.description) } == nil)
        #expect(messages == ["\(source)/f: convert: hard link with 1 of its 2 names outside the tree: converting it in place would change a file outside the tree (--output converts to a copy)"])
        #expect(converter(.mappedXattr, .mappedFile).preflight(root, inPlace: false) { _ in } != nil)
    }

    @Test("--output inside the tree, the tree inside --output, and the tree itself are refused; through a symlink too")
    func outputNesting() throws {
        let dir = TemporaryDirectory()
        let source = dir.sub("t")
        try TreeSpec(text: "dir . 0755 0:0\ndir d 0755 0:0").materialize(at: Array(source.utf8), model: .mappedXattr, placement: HostPlacement())
        #expect(symlink(source, dir.path + "/alias") == 0)
        let root = try Walker.exportRoot(Array(source.utf8))
        for output in [source + "/d/out", source, dir.path + "/alias/d/out", source + "/d/../d/out2"] {
            #expect(throws: VirtFSError.self, "\(output)") { try OutputDirectory.prepare(Array(output.utf8), copying: root) }
            do { _ = try OutputDirectory.prepare(Array(output.utf8), copying: root) } catch {
                #expect(error.description.contains("cannot copy a directory into itself"), "\(error)")
            }
        }
        #expect(access(source + "/d/out", F_OK) != 0, "nothing was made")
        let inner = try Walker.exportRoot(Array((source + "/d").utf8))
        do { _ = try OutputDirectory.prepare(Array(source.utf8), copying: inner); Issue.record("tree inside the output accepted") } catch {
            #expect(error.description.contains("is inside the output"), "\(error)")
        }
        // A sibling is fine.
        _ = try OutputDirectory.prepare(Array(dir.sub("copy").utf8), copying: root)
    }

    @Test("a copy into a mapped model has an output root owned by --owner with dmode", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func outputRootOwnership(to: SecurityModel) throws {
        let dir = TemporaryDirectory()
        let source = dir.sub("t")
        try TreeSpec(text: "dir . 0755 0:0\nfile f 0644 0:0").materialize(at: Array(source.utf8), model: .passthrough, placement: HostPlacement())
        var options = Converter.Options(from: .passthrough, to: to)
        options.placement = HostPlacement(fileMode: 0o600, directoryMode: 0o750, owner: (65534, 65534))
        let root = try Walker.exportRoot(Array(source.utf8))
        let output = dir.sub("out")
        let summary = Converter(options: options).copy(root, into: try OutputDirectory.prepare(Array(output.utf8), copying: root)) { _ in }
        #expect(summary.failures == 0)
        var st = stat()
        #expect(lstat(output, &st) == 0)
        #expect(st.st_uid == 65534 && st.st_gid == 65534)
        #expect(st.st_mode & 0o7777 == 0o750)
        // The guest still sees the root as it was.
        #expect(try decodeTree(output, model: to).views[Array(".".utf8)]?.attributes == decodeTree(source, model: .passthrough).views[Array(".".utf8)]?.attributes)
    }

    /// Leaving passthrough in place, every host inode goes to --owner with fmode/dmode; the
    /// guest's ACL stays a host ACL in mapped-file (its mask and other entries are then the
    /// host mode bits) and moves into user.virtfs.system.* in mapped-xattr.
    @Test("in place from passthrough, host inodes take --owner, fmode, dmode and the host ACLs the target keeps", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func inPlaceSettlesHostInodes(to: SecurityModel) throws {
        let dir = TemporaryDirectory()
        let source = dir.sub("t")
        try TreeSpec(text: """
            dir  .     0755 0:0
            dir  d     0755 1:2
            file d/f   0644 3:4 content="x"
            file d/acl 0640 0:0 acl="u::rw-,u:1000:r--,g::r--,m::r--,o::---"
            """).materialize(at: Array(source.utf8), model: .passthrough, placement: HostPlacement())
        let before = try decodeTree(source, model: .passthrough).views
        var options = Converter.Options(from: .passthrough, to: to)
        options.placement = HostPlacement(fileMode: 0o600, directoryMode: 0o750, owner: (65534, 65534))
        let summary = try Converter(options: options).inPlace(try Walker.exportRoot(Array(source.utf8))) { _ in }
        #expect(summary.failures == 0 && summary.total == 4)
        func host(_ name: String) throws -> (uid: UInt32, gid: UInt32, mode: UInt32, acl: Bool) {
            let parts = name == "." ? [] : name.split(separator: "/").map { Array($0.utf8) }
            let entry = try Walker.inside(try Walker.exportRoot(Array(source.utf8)), relative: parts, path: []).entry()
            return (entry.stat.uid, entry.stat.gid, entry.stat.mode & 0o7777, try entry.xattr(HostACLXattr.access) != nil)
        }
        for (name, mode) in [(".", UInt32(0o750)), ("d", 0o750), ("d/f", 0o600)] {
            let h = try host(name)
            #expect(h.uid == 65534 && h.gid == 65534 && h.mode == mode && !h.acl, "\(name): \(h)")
        }
        let acl = try host("d/acl")
        #expect(acl.uid == 65534 && acl.gid == 65534)
        // (In mapped-file the host mode bits are the ACL's owner, mask and other entries.)
        #expect(to == .mappedFile ? acl.mode == 0o640 && acl.acl : acl.mode == 0o600 && !acl.acl, "\(acl)")
        #expect(try decodeTree(source, model: to).views.mapValues(\.attributes) == before.mapValues(\.attributes))
    }

    @Test("an xattr name that is not UTF-8 is carried by every conversion", arguments: pairs)
    func nonUTF8XattrName(from: SecurityModel, to: SecurityModel, inPlace: Bool) throws {
        let dir = TemporaryDirectory()
        let source = dir.sub("t")
        try TreeSpec(text: "dir . 0755 0:0\nfile f 0644 0:0").materialize(at: Array(source.utf8), model: from, placement: HostPlacement())
        let name = Array("user.".utf8) + [0xff, 0x80]
        let f = try Walker.inside(try Walker.exportRoot(Array(source.utf8)), relative: [Array("f".utf8)], path: [])
        try f.entry().setXattr(raw: name, [1, 2])
        let root = try Walker.exportRoot(Array(source.utf8))
        let converter = Converter(options: .init(from: from, to: to))
        #expect(converter.preflight(root, inPlace: inPlace) { _ in } != nil)
        let result = inPlace ? source : dir.sub("out")
        var failures: [String] = []
        let summary = inPlace ? try converter.inPlace(root) { if case .failed(let e) = $0 { failures.append(e.description) } }
            : converter.copy(root, into: try OutputDirectory.prepare(Array(result.utf8), copying: root)) { if case .failed(let e) = $0 { failures.append(e.description) } }
        #expect(summary.failures == 0, "\(failures)")
        let seen = try decodeTree(result, model: to).views[Array("f".utf8)]
        #expect(seen?.attributes.xattrs == [Xattr(name: name, value: [1, 2])])
    }
}

/// virtfs-overlay --output: the same refusal of a copy into itself, and a copy QEMU's user owns.
@Suite struct OverlayOutput {
    @Test("an overlay copy in a mapped model gives every host object, the root too, to --owner; into itself is refused")
    func ownerAndNesting() throws {
        let dir = TemporaryDirectory()
        let layer = dir.sub("layer")
        try TreeSpec(text: "dir . 0700 0:0\ndir d 0755 0:0\nfile d/f 0644 0:0").materialize(at: Array(layer.utf8), model: .passthrough, placement: HostPlacement())
        let root = try Walker.exportRoot(Array(layer.utf8))
        var failures: [VirtFSError] = []
        _ = try OverlayCopy.copy(root, intoNew: Array(dir.path.utf8) + Array("/copy".utf8), owner: (65534, 65534)) { failures.append($0) }
        #expect(failures.isEmpty, "\(failures)")
        for path in ["copy", "copy/d", "copy/d/f"] {
            var st = stat()
            #expect(lstat(dir.path + "/" + path, &st) == 0)
            #expect(st.st_uid == 65534 && st.st_gid == 65534, "\(path)")
        }
        #expect(throws: VirtFSError.self) { try OverlayCopy.copy(root, intoNew: Array((layer + "/d/out").utf8)) { _ in } }
        #expect(access(layer + "/d/out", F_OK) != 0, "nothing was made inside the layer")
    }
}
