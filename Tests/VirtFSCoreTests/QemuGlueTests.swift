import Glibc
import Testing
import VirtFSCore
import VirtFSQemu
import VirtFSTestSupport

/// A tree written in `model`, as QEMU leaves one: mapped-xattr's user.virtfs.* on an entry,
/// mapped-file's .virtfs_metadata_root; passthrough and none leave nothing. Owned by `owner`.
func qemuTree(_ t: TemporaryDirectory, _ name: String, _ model: SecurityModel, owner: String = "65534:65534") -> String {
    let dir = t.sub(name)
    var setup = "echo hi >'\(dir)/hello'"
    switch model {
    case .mappedXattr: setup += " && setfattr -n user.virtfs.uid -v 0xd2040000 '\(dir)/hello'"
    case .mappedFile: setup += " && printf 'virtfs.uid=7\\n' >'\(dir)/.virtfs_metadata_root'"
    case .passthrough, .none: break
    }
    #expect(shell(setup + " && chown -R \(owner) '\(dir)'") == 0)
    return dir
}

@Suite struct QemuGlueTests {
    @Test("options name the tree's real path, its detected model and its owner as QEMU's user (root for passthrough)",
          arguments: [SecurityModel.passthrough, .mappedXattr, .mappedFile])
    func options(model: SecurityModel) throws {
        let t = TemporaryDirectory()
        let dir = qemuTree(t, "vm", model)
        let export = try QemuExport.inspect(Array((t.path + "/vm/../vm").utf8), model: nil)
        #expect(export.model == model && export.detected)
        #expect(export.path == Array(dir.utf8))
        #expect(export.owner == HostID(uid: 65534, gid: 65534))
        #expect(export.qemuUser == (model == .passthrough ? .root : HostID(uid: 65534, gid: 65534)))
        let words = QemuGlue.arguments(export, tag: "root", id: "fs0").map { String(decoding: $0, as: UTF8.self) }
        #expect(words == ["-fsdev", "local,id=fs0,path=\(dir),security_model=\(model.rawValue)",
                          "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=root"])
    }

    @Test("a model given with --model wins over detection; a tree showing both mapped models is refused")
    func explicitAndMixed() throws {
        let t = TemporaryDirectory()
        let dir = qemuTree(t, "vm", .passthrough)
        let export = try QemuExport.inspect(Array(dir.utf8), model: SecurityModel.none)
        #expect(export.model == SecurityModel.none && !export.detected && export.qemuUser == HostID(uid: 65534, gid: 65534))
        let mixed = qemuTree(t, "mixed", .mappedXattr)
        #expect(shell("touch '\(mixed)/.virtfs_metadata_root'") == 0)
        #expect(throws: VirtFSError.self) { try QemuExport.inspect(Array(mixed.utf8), model: nil) }
    }

    @Test("what options prints reads back, through a shell and QEMU's comma escaping, as a share that matches the tree",
          arguments: [SecurityModel.passthrough, .none, .mappedXattr, .mappedFile])
    func roundTrip(model: SecurityModel) throws {
        let t = TemporaryDirectory()
        let dir = qemuTree(t, "a, b vm", model)
        let export = try QemuExport.inspect(Array(dir.utf8), model: model)
        let args = QemuGlue.arguments(export, tag: "t,a'g", id: "fs0")
        // The shell gives back exactly the words.
        let script = t.path + "/words.sh", out = t.path + "/words"
        let file = fopen(script, "w")
        fputs("printf '%s\\n' " + String(decoding: Array(args.map(QemuGlue.shellQuote).joined(separator: [0x20])), as: UTF8.self) + "\n", file)
        fclose(file)
        #expect(shell("sh '\(script)' >'\(out)'") == 0)
        #expect(try readBytes(out) == Array(args.joined(separator: [0x0a])) + [0x0a])
        let shares = QemuGlue.shares(commandLine: [Array("qemu-system-x86_64".utf8)] + args)
        #expect(shares.count == 1 && shares[0].path == Array(dir.utf8) && shares[0].tag == Array("t,a'g".utf8) && shares[0].hasDevice)
        let result = QemuGlue.check(export, shares: shares, qemuUser: export.qemuUser)
        #expect(result.mismatches.isEmpty, "\(result.mismatches)")
        #expect(result.matched.count == 1)
        // The libvirt form reads back the same way (mapped-file through <qemu:commandline>).
        let xml = QemuGlue.libvirt(export, tag: "root", id: "fs0")
        let domain = QemuGlue.shares(libvirt: xml)
        #expect(domain.user == export.qemuUser)
        #expect(QemuGlue.check(export, shares: domain.shares, qemuUser: domain.user!).mismatches.isEmpty)
        #expect(String(decoding: xml, as: UTF8.self).contains(model == .mappedFile ? "<qemu:commandline>" : "accessmode='\(QemuGlue.accessMode(model)!)'"))
    }

    @Test("a wrong security_model is a mismatch that says what the guest would see; passthrough for none is only a note")
    func wrongModel() throws {
        let t = TemporaryDirectory()
        let dir = qemuTree(t, "vm", .mappedXattr)
        let export = try QemuExport.inspect(Array(dir.utf8), model: nil)
        func check(_ options: String, user: HostID = HostID(uid: 65534, gid: 65534)) -> [QemuGlue.Mismatch] {
            QemuGlue.check(export, shares: QemuGlue.shares(commandLine: ["-virtfs", options].map { Array($0.utf8) }), qemuUser: user).mismatches
        }
        let wrong = check("local,path=\(dir),mount_tag=r,security_model=mapped-file")
        #expect(wrong.map(\.check) == ["security-model"])
        #expect(wrong[0].text.contains("security_model=mapped-file") && wrong[0].text.contains("ignore user.virtfs.*"))
        #expect(check("local,path=\(dir),mount_tag=r,security_model=mapped").isEmpty)
        #expect(check("local,path=\(dir),mount_tag=r").map(\.check) == ["security-model"])
        #expect(check("local,path=\(dir),mount_tag=r,security_model=bogus").map(\.check) == ["security-model"])
        // passthrough: needs root, besides the wrong model.
        #expect(check("local,path=\(dir),mount_tag=r,security_model=passthrough").map(\.check) == ["security-model", "qemu-user"])
        #expect(check("local,path=\(dir),mount_tag=r,security_model=mapped", user: HostID(uid: 1000, gid: 1000)).contains { $0.check == "qemu-user" })

        let plain = try QemuExport.inspect(Array(qemuTree(t, "plain", .passthrough).utf8), model: nil)
        let shares = QemuGlue.shares(commandLine: ["-virtfs", "local,path=\(t.path)/plain,mount_tag=r,security_model=none"].map { Array($0.utf8) })
        let alike = QemuGlue.check(plain, shares: shares, qemuUser: HostID(uid: 65534, gid: 65534))
        #expect(alike.mismatches.isEmpty && alike.notes.count == 1 && alike.notes[0].contains("look alike"))
    }

    @Test("no share with the tree's path, an -fsdev no -device uses, and a driver other than local are mismatches")
    func pathAndDevice() throws {
        let t = TemporaryDirectory()
        let dir = qemuTree(t, "vm", .mappedXattr)
        let other = t.sub("other")
        let export = try QemuExport.inspect(Array(dir.utf8), model: nil)
        let user = HostID(uid: 65534, gid: 65534)
        func args(_ a: String...) -> [[UInt8]] { a.map { Array($0.utf8) } }
        let elsewhere = QemuGlue.check(export, shares: QemuGlue.shares(commandLine: args("-fsdev", "local,id=a,path=\(other),security_model=mapped-xattr",
                                                                                         "-device", "virtio-9p-pci,fsdev=a,mount_tag=x")), qemuUser: user)
        #expect(elsewhere.mismatches.map(\.check) == ["path"] && elsewhere.mismatches[0].text.contains("path=\(other)"))
        let noDevice = QemuGlue.check(export, shares: QemuGlue.shares(commandLine: args("--fsdev", "local,id=a,path=\(dir),security_model=mapped-xattr",
                                                                                        "-device", "virtio-9p-pci,fsdev=b,mount_tag=x")), qemuUser: user)
        #expect(noDevice.mismatches.map(\.check) == ["no-device"])
        let proxy = QemuGlue.check(export, shares: QemuGlue.shares(commandLine: args("-fsdev", "proxy,id=a,path=\(dir),security_model=mapped-xattr",
                                                                                     "-device", "virtio-9p-pci,fsdev=a,mount_tag=x")), qemuUser: user)
        #expect(proxy.mismatches.map(\.check) == ["driver"])
    }

    @Test("QEMU's user must search every directory above the tree and read and write its root")
    func access() throws {
        let t = TemporaryDirectory()
        let parent = t.sub("closed")
        let dir = qemuTree(t, "closed/vm", .mappedXattr)
        let nobody = HostID(uid: 65534, gid: 65534)
        #expect(QemuGlue.access(Array(dir.utf8), user: nobody, write: true) == nil)
        #expect(chmod(parent, 0o700) == 0)
        let denied = QemuGlue.access(Array(dir.utf8), user: nobody, write: true)
        #expect(denied?.contains("cannot search \(parent)") == true)
        #expect(QemuGlue.access(Array(dir.utf8), user: .root, write: true) == nil)
        #expect(chmod(parent, 0o755) == 0 && chmod(dir, 0o500) == 0)
        #expect(QemuGlue.access(Array(dir.utf8), user: nobody, write: false) == nil)
        #expect(QemuGlue.access(Array(dir.utf8), user: nobody, write: true)?.contains("cannot read, write and search") == true)
        // A read-only share needs no write access.
        let export = try QemuExport.inspect(Array(dir.utf8), model: nil)
        func checks(_ options: String) -> [String] {
            QemuGlue.check(export, shares: QemuGlue.shares(commandLine: [Array("-virtfs".utf8), Array(options.utf8)]), qemuUser: nobody).mismatches.map(\.check)
        }
        #expect(checks("local,path=\(dir),mount_tag=r,security_model=mapped-xattr") == ["qemu-access"])
        #expect(checks("local,path=\(dir),mount_tag=r,security_model=mapped-xattr,readonly=on").isEmpty)
    }

    @Test("libvirt domains: an XML declaration, comments skipped, either quote, entities and character references, accessmode names, the DAC label, virtio-fs left out")
    func libvirtDomain() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
              <!-- <filesystem type='mount' accessmode='passthrough'><source dir='/commented'/></filesystem> -->
              <devices>
                <filesystem type="mount" accessmode="mapped">
                  <driver type="path" wrpolicy="immediate"/>
                  <source dir="/srv/a&amp;b"/>
                  <target dir="root"/>
                </filesystem>
                <filesystem type='mount'><source dir='/srv/&#x64;efault'/><target dir='d'/></filesystem>
                <filesystem type='mount' accessmode='squash'><source dir='/srv/s'/><target dir='s'/><readonly/></filesystem>
                <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/srv/vfs'/><target dir='v'/></filesystem>
              </devices>
              <seclabel type='static' model='dac' relabel='no'><label>+nobody:+0</label></seclabel>
              <qemu:commandline><qemu:arg value='-virtfs'/><qemu:arg value='local,path=/srv/mf,mount_tag=mf,security_model=mapped-file'/></qemu:commandline>
            </domain>
            """
        let (shares, user) = QemuGlue.shares(libvirt: Array(xml.utf8))
        #expect(shares.map { String(decoding: $0.path ?? [], as: UTF8.self) } == ["/srv/a&b", "/srv/default", "/srv/s", "/srv/mf"])
        #expect(shares.map { $0.model ?? "" } == ["mapped-xattr", "passthrough", "none", "mapped-file"])
        #expect(shares[0].origin == "<filesystem> root" && shares.allSatisfy(\.hasDevice))
        #expect(shares.map(\.readonly) == [false, false, true, false])
        #expect(user == HostID(uid: 65534, gid: 0))
    }

    @Test("the default tag is the tree's plain base name, else 'share'")
    func defaultTag() {
        #expect(QemuGlue.defaultTag(Array("/srv/vm/root".utf8)) == "root")
        #expect(QemuGlue.defaultTag(Array("/srv/my vm".utf8)) == "share")
        #expect(QemuGlue.defaultTag(Array("/".utf8)) == "share")
    }
}
