import Glibc
import Testing
import VirtFSTestSupport
import VirtFSCore

/// virtfs-chown and virtfs-chmod's editor: the guest view after an edit is what the same
/// command run in the guest leaves, judged by decoding the tree again.
@Suite struct EditorSemantics {
    static let spec = """
        dir . 0755 0:0
        file suid 4755 0:0 content=x
        file sgid-exec 2755 0:50
        file sgid-noexec 2644 0:50
        dir shared 2775 1000:50
        file target 0640 1000:1000
        symlink link 0777 0:0 target=target
        """

    func location(_ tree: FixtureTree, _ relative: String) throws -> Walker.Location {
        try Walker.inside(Walker.exportRoot(tree.rootBytes), relative: Bytes.components(Array(relative.utf8)),
                          path: Array(tree.path(relative).utf8))
    }

    func chown(_ tree: FixtureTree, _ relative: String, uid: UInt32?, gid: UInt32?, editor: Editor? = nil) throws -> Editor.Change? {
        try (editor ?? Editor(model: tree.model, dryRun: false)).edit(location(tree, relative).entry()) {
            $0.attributes.changingOwner(uid: uid, gid: gid)
        }
    }

    /// The host bytes an edit could touch: modes, owners, sizes, xattrs and mapped-file metadata.
    func snapshot(_ tree: FixtureTree) -> String {
        let out = tree.dir.path + "/snapshot"
        _ = system("cd '\(tree.root)' && { find . -printf '%p %y %m %U %G %s\\n' | LC_ALL=C sort; getfattr -R -h -d -m - -e hex . 2>/dev/null; find . -type f -exec md5sum {} + | LC_ALL=C sort; } >'\(out)'")
        return (try? readText(out)) ?? ""
    }

    @Test("chown clears set-user-ID, and set-group-ID with group execute, on non-directories", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func setidCleared(model: SecurityModel) throws {
        let tree = try FixtureTree(model, spec: Self.spec)
        for name in ["suid", "sgid-exec", "sgid-noexec", "shared"] {
            _ = try chown(tree, name, uid: 1000, gid: nil)
        }
        #expect(try tree.view("suid").attributes.permissions == 0o755)
        #expect(try tree.view("sgid-exec").attributes.permissions == 0o755)
        #expect(try tree.view("sgid-noexec").attributes.permissions == 0o2644, "set-group-ID without group execute is not a set-id bit Linux clears")
        #expect(try tree.view("shared").attributes.permissions == 0o2775, "directories keep their set-id bits")
        #expect(try tree.view("suid").uid == 1000)
        #expect(try tree.view("suid").gid == 0, "a chown to OWNER alone keeps the group")
    }

    @Test("chown of a symlink changes the symlink, never its target (chown -h)", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func symlinkItself(model: SecurityModel) throws {
        let tree = try FixtureTree(model, spec: Self.spec)
        let target = try tree.view("target")
        let change = try chown(tree, "link", uid: 1234, gid: 5678)
        #expect(change?.changed == true)
        let link = try tree.view("link")
        #expect(link.type == .symlink && link.uid == 1234 && link.gid == 5678)
        #expect(link.attributes.symlinkTarget == Array("target".utf8))
        #expect(try tree.view("target").attributes == target.attributes)
    }

    @Test("chmod sets the permission bits and nothing else", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func chmod(model: SecurityModel) throws {
        let tree = try FixtureTree(model, spec: Self.spec)
        let before = try tree.view("target")
        let change = try ModeChange("g+w,o=r")
        _ = try Editor(model: model, dryRun: false).edit(location(tree, "target").entry()) {
            $0.attributes.changingPermissions(change.apply(to: $0.attributes.permissions, isDirectory: false, umask: 0o022))
        }
        let after = try tree.view("target")
        #expect(after.attributes.permissions == 0o664)
        #expect(after.uid == before.uid && after.gid == before.gid && after.type == .regular)
    }

    @Test("a dry run reports the change and writes nothing", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func dryRun(model: SecurityModel) throws {
        let tree = try FixtureTree(model, spec: Self.spec)
        let before = snapshot(tree)
        let change = try chown(tree, "suid", uid: 1000, gid: 1000, editor: Editor(model: model, dryRun: true))
        #expect(change?.changed == true)
        #expect(change?.after.permissions == 0o755)
        #expect(snapshot(tree) == before)
        #expect(try tree.view("suid").attributes.permissions == 0o4755)
    }

    @Test("an entry whose host inode has a name outside the tree is refused, and stays as it was", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func outsideLinkRefused(model: SecurityModel) throws {
        let tree = try FixtureTree(model, spec: Self.spec)
        link(tree.path("target"), tree.dir.path + "/outside")
        let before = try tree.view("target")
        let links = LinkCensus(root: try Walker.exportRoot(tree.rootBytes))
        for dryRun in [true, false] {
            #expect(throws: VirtFSError.self, "dry run \(dryRun) meets the refusal the real run would") {
                try chown(tree, "target", uid: 0, gid: 0, editor: Editor(model: model, dryRun: dryRun, links: links))
            }
        }
        #expect(try tree.view("target").attributes == before.attributes)
        let allowed = LinkCensus(root: try Walker.exportRoot(tree.rootBytes), allowOutside: true)
        _ = try chown(tree, "target", uid: 0, gid: 0, editor: Editor(model: model, dryRun: false, links: allowed))
        #expect(try tree.view("target").uid == 0)
    }

    @Test("a transform that returns nil leaves the entry alone (--from did not match)")
    func noChange() throws {
        let tree = try FixtureTree(.mappedXattr, spec: Self.spec)
        let before = snapshot(tree)
        #expect(try Editor(model: .mappedXattr, dryRun: false).edit(location(tree, "suid").entry()) { _ in nil } == nil)
        #expect(snapshot(tree) == before)
    }

    @Test("passthrough: chown changes the host owner and clears set-user-ID as the kernel does",
          .enabled(if: runningAsRoot, "needs root: passthrough owners are host owners, changed with chown(2)"))
    func passthrough() throws {
        let tree = try FixtureTree(.passthrough, spec: Self.spec)
        _ = try chown(tree, "suid", uid: 1000, gid: nil)
        var st = stat()
        lstat(tree.path("suid"), &st)
        #expect(st.st_uid == 1000 && st.st_mode & 0o7777 == 0o755)
        _ = try chown(tree, "link", uid: 1234, gid: nil)
        lstat(tree.path("link"), &st)
        #expect(st.st_uid == 1234)
        lstat(tree.path("target"), &st)
        #expect(st.st_uid == 1000, "the symlink's target keeps its owner")
    }
}
