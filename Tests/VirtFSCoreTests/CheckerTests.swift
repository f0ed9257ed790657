import Glibc
import Testing
import VirtFSTestSupport
import VirtFSCore

/// virtfs-fsck's checker on small trees in each model, judged by what it reports (the checks'
/// stable names, severities, whether a repair is offered) and by what the guest sees after the
/// repairs, never by how it finds things.
@Suite struct CheckerFindings {
    @Test("a healthy mapped tree has no findings", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func healthyMapped(model: SecurityModel) throws {
        let tree = try FixtureTree(model)
        let findings = try tree.findings()
        #expect(findings.isEmpty, "\(findings.map { "\($0.relativePath): \($0.check.rawValue) \($0.problem)" })")
    }

    @Test("a healthy passthrough or none tree has one finding: a warning for its device node",
          .enabled(if: runningAsRoot, "needs root: the tree's owners and device nodes are real host ones"),
          arguments: [SecurityModel.passthrough, .none])
    func healthyHost(model: SecurityModel) throws {
        let tree = try FixtureTree(model)
        let findings = try tree.findings()
        #expect(findings.map(\.check) == [.privileged])
        #expect(findings.map(\.relativePath) == ["dev/null"])
        #expect(findings.allSatisfy { $0.severity == .warning && $0.repair == nil })
    }

    @Test("mapped-xattr: values of a length QEMU misreads are xattr-length errors; the repair leaves a tree fsck calls clean")
    func xattrLength() throws {
        let tree = try FixtureTree(.mappedXattr)
        let before = try tree.views().views
        tree.setXattr("bin/sh", "user.virtfs.uid", [1, 2, 3])
        tree.setXattr("etc/passwd", "user.virtfs.mode", [0xa4, 0x81, 0, 0, 0])
        let findings = try tree.findings()
        #expect(Set(findings.map(\.check)) == [.xattrLength])
        #expect(Set(findings.map(\.relativePath)) == ["bin/sh", "etc/passwd"])
        #expect(findings.allSatisfy { $0.severity == .error && $0.repair != nil })

        #expect(try tree.repairAll().count == findings.count)
        #expect(try tree.findings().isEmpty, "-n after -y is clean")
        let (after, errors) = try tree.views()
        #expect(errors.isEmpty, "every entry decodes strictly after the repair: \(errors)")
        for (path, view) in before where path != "bin/sh" && path != "etc/passwd" {
            #expect(after[path]?.attributes == view.attributes, "\(path) is not changed by another entry's repair")
        }
        #expect(after["etc/passwd"]?.type == .regular)
    }

    @Test("--adopt-from-parent gives an entry without metadata the guest owner of its own directory, keeping its mode",
          arguments: [SecurityModel.mappedXattr, .mappedFile])
    func adoptFromParent(model: SecurityModel) throws {
        let tree = try FixtureTree(model)
        tree.write("home/alice/new", "copied in on the host\n")
        let before = try tree.view("home/alice/new")
        #expect(before.hostFallback)
        func adopting(_ findings: [Finding]) -> [Finding] {
            findings.filter { $0.relativePath == "home/alice/new" && $0.check == .noMetadata }
        }
        let found = adopting(try tree.findings { $0.adoption = .fromParent })
        #expect(found.count == 1 && found.first?.repair?.safe == true)
        try tree.repairAll { $0.adoption = .fromParent }
        let after = try tree.view("home/alice/new")
        #expect((after.uid, after.gid) == (1000, 1000), "the owner of home/alice, not of the root")
        #expect(after.attributes.permissions == before.attributes.permissions)
        #expect(!after.hostFallback)
        #expect(adopting(try tree.findings { $0.adoption = .fromParent }).isEmpty, "-n after -y is clean")
    }

    @Test("mapped-file: metadata of a removed file is orphan-metadata, and the repair removes it and nothing else")
    func orphanMetadata() throws {
        let tree = try FixtureTree(.mappedFile)
        let before = try tree.views().views
        tree.write("etc/.virtfs_metadata/gone", "virtfs.uid=0\nvirtfs.gid=0\nvirtfs.mode=33188\n")
        let findings = try tree.findings()
        #expect(findings.map(\.check) == [.orphanMetadata])
        try tree.repairAll()
        #expect(!tree.exists("etc/.virtfs_metadata/gone"))
        #expect(tree.exists("etc/.virtfs_metadata/passwd"))
        #expect(try tree.findings().isEmpty)
        #expect(try tree.views().views.mapValues(\.attributes) == before.mapValues(\.attributes))
    }

    @Test("mapped-file: a host symlink is host-special; repaired, the guest reads the same target from a stored symlink")
    func hostSpecial() throws {
        let tree = try FixtureTree(.mappedFile)
        symlink("../bin/sh", tree.path("etc/shell"))
        let findings = try tree.findings()
        #expect(findings.map(\.check) == [.hostSpecial])
        #expect(findings.first?.relativePath == "etc/shell")
        #expect(try tree.view("etc/shell").symlinkReadable == false, "QEMU cannot read a host symlink in a mapped export")

        try tree.repairAll()
        let view = try tree.view("etc/shell")
        #expect(view.type == .symlink && view.symlinkReadable)
        #expect(view.attributes.symlinkTarget == Array("../bin/sh".utf8))
        var st = stat()
        lstat(tree.path("etc/shell"), &st)
        #expect(st.st_mode & S_IFMT == S_IFREG, "a mapped-file symlink is a regular file holding the target")
        #expect(try tree.findings().isEmpty)
    }

    @Test("a host-special repair is not made when the model was detected rather than named")
    func hostSpecialNeedsDeclaredModel() throws {
        let tree = try FixtureTree(.mappedFile)
        symlink("../bin/sh", tree.path("etc/shell"))
        try tree.repairAll { $0.modelDeclared = false }
        var st = stat()
        lstat(tree.path("etc/shell"), &st)
        #expect(st.st_mode & S_IFMT == S_IFLNK)
    }

    @Test("mapped-xattr: a mode of no file type is mode-type; repaired, fsck is clean")
    func modeType() throws {
        let tree = try FixtureTree(.mappedXattr)
        tree.setXattr("home/alice/a", "user.virtfs.mode", [0xa4, 0x01, 0, 0])
        #expect(try tree.findings().map(\.check) == [.modeType])
        try tree.repairAll()
        #expect(try tree.findings().isEmpty)
        #expect(try tree.views().errors.isEmpty)
    }

    @Test("passthrough: user.virtfs.* a guest wrote is an untrusted-xattr warning with no repair",
          .enabled(if: runningAsRoot, "needs root: the tree's owners are real host ones"))
    func untrustedXattr() throws {
        let tree = try FixtureTree(.passthrough)
        tree.setXattr("home/alice/a", "user.virtfs.uid", [0, 0, 0, 0])
        let findings = try tree.findings().filter { $0.check == .untrustedXattr }
        #expect(findings.map(\.relativePath) == ["home/alice/a"])
        #expect(findings.allSatisfy { $0.severity == .warning && $0.repair == nil })
    }

    @Test("none: a set-user-ID root file is a privileged-entry warning, left alone",
          .enabled(if: runningAsRoot, "needs root: the file must be owned by root on the host"))
    func privilegedEntry() throws {
        let tree = try FixtureTree(.none, spec: "dir . 0755 0:0\nfile su 4755 0:0 content=x\nfile plain 0755 0:0\n")
        let findings = try tree.findings()
        #expect(findings.map(\.check) == [.privileged])
        #expect(findings.first?.severity == .warning && findings.first?.repair == nil)
    }
}
