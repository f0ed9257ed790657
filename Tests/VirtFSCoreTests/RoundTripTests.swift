import Glibc
import Testing
@testable import VirtFSCore
import VirtFSTestSupport

/// Every model's encoder writes testdata/trees/full.tree, and its decoder must give back exactly
/// the guest view the spec describes (what a booted guest sees of the same tree is checked by the
/// QEMU oracle suite).
@Suite struct RoundTrip {
    static let models: [SecurityModel] = [.mappedXattr, .mappedFile, .passthrough]

    @Test("encode then decode gives back the spec's guest view", arguments: models)
    func fullTree(model: SecurityModel) throws {
        let dir = TemporaryDirectory()
        let spec = try TreeSpec(text: try readText(testdata("trees/full.tree")))
        try spec.materialize(at: dir.bytes, model: model, placement: HostPlacement(owner: (65534, 65534)))
        let (views, errors) = try decodeTree(dir.path, model: model)
        #expect(errors.isEmpty, "\(errors)")

        var linkTargets: [[UInt8]: [UInt8]] = [:]
        for entry in spec.entries {
            let key = Bytes.components(entry.path).isEmpty ? [UInt8(ascii: ".")] : entry.path
            let shown = String(decoding: key, as: UTF8.self)
            guard let view = views[key] else {
                Issue.record("\(shown) was not found by the walker")
                continue
            }
            if let target = entry.linkTo {
                linkTargets[key] = target
                continue
            }
            let want = entry.attributes
            let got = view.attributes
            #expect(got.type == want.type, "\(shown)")
            #expect(got.permissions == want.permissions, "\(shown)")
            #expect(got.uid == want.uid && got.gid == want.gid, "\(shown)")
            if want.type.hasDeviceNumber { #expect(got.rdev == want.rdev, "\(shown)") }
            if want.type == .symlink {
                #expect(got.symlinkTarget == want.symlinkTarget, "\(shown)")
                // A real host symlink in a mapped export is one the guest cannot read.
                #expect(view.symlinkReadable == (!model.isMapped || !entry.hostOnly), "\(shown)")
            }
            if want.type != .symlink {
                #expect(got.accessACL == want.accessACL, "\(shown)")
                #expect(got.defaultACL == want.defaultACL, "\(shown)")
                #expect(Set(got.xattrs) == Set(want.xattrs), "\(shown)")
            }
            if want.type == .regular { #expect(view.host.size == UInt64(entry.content.count), "\(shown)") }
            #expect(view.hostFallback == (entry.hostOnly || !model.isMapped), "\(shown)")
            if let mtime = entry.mtime { #expect(view.host.mtime.seconds == mtime, "\(shown)") }
        }
        for (link, target) in linkTargets {
            #expect(views[link]?.host.identity == views[target]?.host.identity, "hard link \(String(decoding: link, as: UTF8.self))")
            #expect(views[link]?.attributes == views[target]?.attributes)
        }
        // The walker hides exactly mapped-file's own entries, nothing else.
        let visible = Set(spec.entries.map { Bytes.components($0.path).isEmpty ? [UInt8(ascii: ".")] : $0.path })
        #expect(Set(views.keys) == visible)
    }

    @Test("mapped-file keeps one metadata file per hard-linked inode")
    func mappedFileHardLinks() throws {
        let dir = TemporaryDirectory()
        let spec = try TreeSpec(text: try readText(testdata("trees/full.tree")))
        try spec.materialize(at: dir.bytes, model: .mappedFile, placement: HostPlacement())
        var a = Glibc.stat(), b = Glibc.stat()
        stat(dir.path + "/.virtfs_metadata/hard1", &a)
        stat(dir.path + "/.virtfs_metadata/hard2", &b)
        #expect(a.st_ino == b.st_ino && a.st_nlink == 3)
    }

    @Test("mapped models store hosts objects with QEMU's fmode/dmode and the requested owner", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func hostPlacement(model: SecurityModel) throws {
        let dir = TemporaryDirectory()
        let spec = try TreeSpec(text: try readText(testdata("trees/full.tree")))
        try spec.materialize(at: dir.bytes, model: model, placement: HostPlacement(fileMode: 0o640, directoryMode: 0o750, owner: (65534, 65533)))
        var st = Glibc.stat()
        lstat(dir.path + "/dev/null", &st)
        #expect(st.st_mode == 0o100640 && st.st_uid == 65534 && st.st_gid == 65533)
        lstat(dir.path + "/home", &st)
        #expect(st.st_mode == 0o040750)
        lstat(dir.path + "/sl", &st)
        #expect(st.st_mode & 0o170000 == 0o100000, "a mapped symlink is a host regular file")
    }
}
