import Glibc
import Testing
@testable import VirtFSCore
import VirtFSTestSupport

// The host's kernel overlayfs is the oracle here: layers are made by it, and converted layers
// are judged by mounting them. Those tests need root (mounts, trusted.* xattrs, device nodes)
// and are skipped, visibly, without it. What a 9p guest sees is tests/qemu/overlay's job.

let overlayRoot = geteuid() == 0

@discardableResult
func shell(_ command: String) -> Int32 {
    let status = system(command)
    return (status >> 8) & 0xff
}

/// Every host fact a layer carries, one line per entry, sorted: type, permissions, owner,
/// device number, size, mtime, data, symlink target and every xattr (all namespaces) in hex.
/// Directories' sizes are left out (they depend on the history of the directory).
func hostDump(_ dir: String, times: Bool = true) throws -> [String] {
    var lines: [String] = []
    var options = Walker.Options(recursive: true)
    options.hiddenStorage = []
    let prefix = Array(dir.utf8)
    var errors: [VirtFSError] = []
    Walker(options: options).walk(try Walker.exportRoot(prefix), visit: { entry in
        do {
            let st = entry.stat
            let rel = String(decoding: entry.path.dropFirst(prefix.count), as: UTF8.self)
            var line = "\(rel.isEmpty ? "." : rel)|\(st.fileType?.keyword ?? "?")|\(String(st.permissions, radix: 8))|\(st.uid):\(st.gid)|\(st.rdev)"
            if st.fileType != .directory { line += "|size=\(st.size)" }
            // QEMU never shows the times of mapped-file metadata files: they differ between runs.
            if times && !rel.contains(".virtfs_metadata") { line += "|mtime=\(st.mtime.seconds).\(st.mtime.nanoseconds)" }
            if st.fileType == .regular { line += "|data=" + Bytes.hex(try entry.readContent(limit: 1 << 20).bytes) }
            if st.fileType == .symlink { line += "|target=" + String(decoding: try entry.readLink(), as: UTF8.self) }
            for name in try entry.xattrNames().sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                let text = String(decoding: name, as: UTF8.self)
                line += "|\(text)=" + Bytes.hex(try entry.xattr(text) ?? [])
            }
            lines.append(line)
        } catch let e as VirtFSError {
            errors.append(e)
        } catch {}
    }, failure: { errors.append($0) })
    if let first = errors.first { throw first }
    return lines.sorted()
}

/// What a mount shows: names, types, permissions, owners, devices, sizes, data, targets.
func mergedView(_ dir: String) throws -> [String] {
    try hostDump(dir, times: false).map { line in
        line.split(separator: "|").filter { !$0.hasPrefix("trusted.") && !$0.hasPrefix("user.") && !$0.hasPrefix("security.") }.joined(separator: "|")
    }
}

/// Mounts kernel overlayfs for the duration of `body` (read-only when there is no upper).
func withOverlay<T>(lowers: [String], upper: String? = nil, work: String? = nil, at mountpoint: String, _ body: () throws -> T) throws -> T {
    var options = "lowerdir=" + lowers.joined(separator: ":")
    if let upper, let work { options += ",upperdir=\(upper),workdir=\(work)" }
    let status = shell("mount -t overlay overlay -o '\(options)' '\(mountpoint)'")
    guard status == 0 else { throw VirtFSError.refused("mount", path: Array(mountpoint.utf8), "mount -t overlay -o \(options) failed (\(status))") }
    // Busy for a moment when another test spawns a command while `body` has a directory of the
    // mount open (the child holds a copy until its exec): retried, then detached, never left.
    defer { shell("for i in $(seq 50); do umount '\(mountpoint)' 2>/dev/null && exit 0; sleep 0.1; done; umount -l '\(mountpoint)'") }
    return try body()
}

func materialize(_ spec: String, at dir: String, model: SecurityModel = .passthrough) throws {
    try TreeSpec(text: try readText(testdata(spec))).materialize(at: Array(dir.utf8), model: model, placement: HostPlacement())
}

@discardableResult
func convertLayer(_ dir: String, model: SecurityModel = .passthrough, dialect: OverlayDialect? = nil, whiteouts: WhiteoutForm? = nil,
                  map: XattrMap? = nil, toServer: Bool = true, force: Bool = false, dryRun: Bool = false) throws -> (OverlayConverter.Summary, [OverlayConverter.Event]) {
    var options = OverlayConverter.Options(model: model)
    options.dialect = dialect
    options.whiteouts = whiteouts
    options.xattrMap = map
    options.xattrMapToServer = toServer
    options.force = force
    var events: [OverlayConverter.Event] = []
    let summary = try OverlayConverter(options: options).run(try Walker.exportRoot(Array(dir.utf8)), dryRun: dryRun) { events.append($0) }
    let failures = events.compactMap { e -> VirtFSError? in if case .failed(let f) = e { return f } else { return nil } }
    #expect(failures.isEmpty, "\(failures)")
    return (summary, events)
}

func convertModel(_ dir: String, from: SecurityModel, to: SecurityModel) throws {
    var options = Converter.Options(from: from, to: to)
    options.allowDevices = true
    options.allowSetuid = true
    var failures: [VirtFSError] = []
    _ = try Converter(options: options).inPlace(try Walker.exportRoot(Array(dir.utf8))) { e in
        if case .failed(let f) = e { failures.append(f) }
    }
    #expect(failures.isEmpty, "\(failures)")
}

/// A lower and an upper layer made by the host's kernel overlayfs, as root would: char 0/0
/// whiteouts, an opaque directory, copy-ups with origin handles, trusted.overlay.* xattrs.
/// Returns the merged view the kernel showed.
func kernelLayers(_ t: TemporaryDirectory) throws -> [String] {
    let l = t.sub("lower"), u = t.sub("upper"), w = t.sub("work"), m = t.sub("merged")
    #expect(shell("""
        cd '\(l)' && mkdir -p etc var/cache gone/sub redo/k emptydir && echo r >etc/passwd && echo s >etc/shadow \
        && echo a >'var/cache/a b' && echo c >var/cache/c && echo x >gone/sub/x && echo k >redo/k/k && echo log >log \
        && ln -s etc lnk && chown 0:42 etc/shadow
        """) == 0)
    return try withOverlay(lowers: [l], upper: u, work: w, at: m) {
        #expect(shell("""
            cd '\(m)' && rm etc/shadow 'var/cache/a b' lnk && rm -r gone redo && mkdir redo && echo f >redo/f && rmdir emptydir \
            && echo more >>log && chown 5:6 etc/passwd && mkdir new && mknod new/tty c 4 1 && ln -s ../log new/l
            """) == 0)
        return try mergedView(m)
    }
}

@Suite struct OverlayNames {
    @Test("overlay xattr names are told apart by dialect, nested escapes kept in the key")
    func dialects() {
        #expect(OverlayDialect.parse(Array("trusted.overlay.opaque".utf8))! == (.trusted, Array("opaque".utf8)))
        #expect(OverlayDialect.parse(Array("user.overlay.overlay.origin".utf8))! == (.user, Array("overlay.origin".utf8)))
        #expect(OverlayDialect.parse(Array("user.virtiofs.trusted.overlay.impure".utf8))! == (.virtiofs, Array("impure".utf8)))
        #expect(OverlayDialect.parse(Array("user.virtfs.mode".utf8)) == nil)
        #expect(OverlayDialect.parse(Array("trusted.overlay.".utf8)) == nil)
    }

    // Expected names follow virtiofsd's documented semantics (doc/xattr-mapping.md): `map`
    // expands to prefix/all, bad/server on the key, bad/client on the prefix, ok/all.
    @Test("virtiofsd's :map: rule maps trusted.* both ways and refuses what virtiofsd refuses")
    func mapRule() throws {
        let map = try XattrMap(":map:trusted.:user.virtiofs.:")
        #expect(map.rules.count == 4)
        #expect(map.map("trusted.overlay.opaque", toServer: true) == .name("user.virtiofs.trusted.overlay.opaque"))
        #expect(map.map("user.comment", toServer: true) == .name("user.comment"))
        #expect(map.map("security.selinux", toServer: true) == .name("security.selinux"))
        if case .name = map.map("user.virtiofs.trusted.x", toServer: true) { Issue.record("a client may not name the prefix directly") }
        #expect(map.map("user.virtiofs.trusted.overlay.opaque", toServer: false) == .name("trusted.overlay.opaque"))
        if case .name = map.map("trusted.overlay.opaque", toServer: false) { Issue.record("an unprefixed host trusted.* is hidden") }
        #expect(map.map("user.comment", toServer: false) == .name("user.comment"))
    }

    @Test("virtiofsd rules with other separators, several rules, and the prefix-everything example")
    func rules() throws {
        let all = try XattrMap(":prefix:all::user.virtiofs.::bad:all:::")
        #expect(all.map("security.selinux", toServer: true) == .name("user.virtiofs.security.selinux"))
        if case .name = all.map("user.foo", toServer: false) { Issue.record("unprefixed host names are hidden") }
        let slashes = try XattrMap("/prefix/all/trusted./user.virtiofs./\n /bad/server//trusted./ /bad/client/user.virtiofs.// /ok/all///")
        #expect(slashes.rules.count == 4)
        #expect(slashes.map("trusted.a", toServer: true) == .name("user.virtiofs.trusted.a"))
        #expect(slashes.map("user.virtiofs.trusted.a", toServer: false) == .name("trusted.a"))
    }

    @Test("malformed virtiofsd rules are refused", arguments: [":prefix:all:x", ":frob:all:::", ":prefix:nowhere:::", ":map:a.:b.::ok:all:::", ""])
    func badRules(text: String) {
        #expect(throws: VirtFSError.self) { try XattrMap(text) }
    }
}

@Suite(.enabled(if: overlayRoot, "needs root: kernel overlay mounts, trusted.* xattrs, device nodes"))
struct OverlayLayers {
    @Test("an OCI layer converted to char whiteouts is what the kernel reads as the layer, and converts back byte for byte")
    func ociRoundTrip() throws {
        let t = TemporaryDirectory()
        let lower = t.sub("lower"), upper = t.sub("upper"), m = t.sub("m")
        try materialize("overlay/oci-lower.tree", at: lower)
        try materialize("overlay/oci-upper.tree", at: upper)
        let before = try hostDump(upper)
        let (summary, _) = try convertLayer(upper, dialect: .trusted, whiteouts: .char)
        #expect(summary.changes[.whiteout] == 4 && summary.changes[.opaque] == 1)
        let merged = try withOverlay(lowers: [upper, lower], at: m) { try mergedView(m) }
        let names = merged.map { String($0.split(separator: "|")[0]) }
        #expect(!names.contains { $0.contains(".wh.") }, "\(names)")
        for gone in ["/etc/shadow", "/lib", "/with space", "/var/cache", "/var/cache/x", "/usr/share/doc/a", "/usr/share/doc/b"] {
            #expect(!names.contains(gone), "\(gone) should be deleted by the layer")
        }
        for kept in ["/keep", "/etc/passwd", "/etc/hostname", "/usr/share/doc/new", "/usr/lib/libx.so", "/added"] {
            #expect(names.contains(kept), "\(kept) should be in the merged view")
        }
        try convertLayer(upper, dialect: .trusted, whiteouts: .oci)
        #expect(try hostDump(upper) == before)
    }

    @Test("xattr whiteouts (Linux 6.7+) give the kernel the same merged view as char whiteouts, and convert back")
    func xattrWhiteouts() throws {
        let t = TemporaryDirectory()
        let lower = t.sub("lower"), upper = t.sub("upper"), m = t.sub("m")
        try materialize("overlay/oci-lower.tree", at: lower)
        try materialize("overlay/oci-upper.tree", at: upper)
        let before = try hostDump(upper)
        try convertLayer(upper, dialect: .trusted, whiteouts: .char)
        let charView = try withOverlay(lowers: [upper, lower], at: m) { try mergedView(m) }
        try convertLayer(upper, whiteouts: .xattr)
        let dump = try hostDump(upper)
        #expect(dump.contains { $0.hasPrefix("/etc|") && $0.contains("trusted.overlay.opaque=78") })
        #expect(!dump.contains { $0.contains("|character-device|") || $0.contains("|char|") })
        let xattrView = try withOverlay(lowers: [upper, lower], at: m) { try mergedView(m) }
        #expect(xattrView == charView)
        try convertLayer(upper, whiteouts: .oci)
        #expect(try hostDump(upper) == before)
    }

    @Test("a kernel-made upper layer goes to the user dialect and mapped-xattr whiteouts and back; the kernel's merged view is unchanged")
    func kernelLayerThroughMappedXattr() throws {
        let t = TemporaryDirectory()
        let view = try kernelLayers(t)
        let upper = t.path + "/upper", lower = t.path + "/lower"
        let original = try hostDump(upper)
        try convertModel(upper, from: .passthrough, to: .mappedXattr)
        let (summary, events) = try convertLayer(upper, model: .mappedXattr, dialect: .user, whiteouts: .mapped)
        #expect(summary.stale > 0, "origin handles are reported")
        #expect(events.contains { if case .stale = $0 { return true } else { return false } })
        let converted = try hostDump(upper)
        #expect(!converted.contains { $0.contains("trusted.overlay.") })
        // Values byte for byte: every trusted.overlay.K=V of the original is a user.overlay.K=V now.
        func values(_ dump: [String], _ prefix: String) -> [String] {
            dump.flatMap { line -> [String] in
                let path = String(line.split(separator: "|")[0])
                return line.split(separator: "|").filter { $0.hasPrefix(prefix) }.map { path + " " + $0.dropFirst(prefix.count) }
            }.sorted()
        }
        let userValues = values(converted, "user.overlay.").filter { !$0.hasSuffix("impure=79") }
        #expect(userValues == values(original, "trusted.overlay.").filter { !$0.hasSuffix("impure=79") })
        // Whiteouts are what a mapped-xattr guest reads as char 0:0, and their directories impure.
        let (views, errors) = try decodeTree(upper, model: .mappedXattr)
        #expect(errors.isEmpty)
        let whiteouts = views.filter { $0.value.type == .characterDevice && $0.value.attributes.rdev == .zero }
        #expect(whiteouts.count == 5)
        for (path, _) in whiteouts {
            let parent = Bytes.splitParent(path).parent
            let dir = parent == [UInt8(ascii: ".")] ? [UInt8(ascii: ".")] : parent
            #expect(views[dir]?.attributes.xattrs.contains { $0.name == Array("user.overlay.impure".utf8) } == true,
                    "\(String(decoding: dir, as: UTF8.self)) holds a whiteout")
        }
        try convertLayer(upper, model: .mappedXattr, dialect: .trusted, whiteouts: .char)
        try convertModel(upper, from: .mappedXattr, to: .passthrough)
        let again = try withOverlay(lowers: [lower], upper: upper, work: t.sub("work2"), at: t.path + "/merged") { try mergedView(t.path + "/merged") }
        #expect(again == view)
    }

    @Test("running virtfs-overlay before or after virtfs-convert gives the same tree", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func commutesWithConvert(model: SecurityModel) throws {
        let t = TemporaryDirectory()
        _ = try kernelLayers(t)
        let a = t.path + "/a", b = t.path + "/b"
        #expect(shell("cp -a '\(t.path)/upper' '\(a)' && cp -a '\(t.path)/upper' '\(b)'") == 0)
        try convertModel(a, from: .passthrough, to: model)
        try convertLayer(a, model: model, dialect: .user, whiteouts: .mapped)
        try convertLayer(b, model: .passthrough, dialect: .user, whiteouts: .mapped)
        try convertModel(b, from: .passthrough, to: model)
        let (da, db) = (try hostDump(a), try hostDump(b))
        #expect(da == db, "\(Set(da).symmetricDifference(db).sorted())")
    }

    @Test("--dry-run changes nothing, xattrs included", arguments: [
        (OverlayDialect.user, WhiteoutForm.mapped), (.virtiofs, .xattr), (.trusted, .xattr), (.user, .oci),
    ])
    func dryRun(dialect: OverlayDialect, form: WhiteoutForm) throws {
        let t = TemporaryDirectory()
        _ = try kernelLayers(t)
        let upper = t.path + "/upper"
        let before = try hostDump(upper)
        let (summary, _) = try convertLayer(upper, dialect: dialect, whiteouts: form, dryRun: true)
        #expect(summary.total > 0)
        #expect(try hostDump(upper) == before)
    }

    @Test("converting a layer that uses redirect to the user dialect is refused before any change, done with force")
    func redirectRefused() throws {
        let t = TemporaryDirectory()
        _ = try kernelLayers(t)
        let upper = t.path + "/upper"
        #expect(shell("setfattr -n trusted.overlay.redirect -v /renamed '\(upper)/redo'") == 0)
        let before = try hostDump(upper)
        #expect(throws: VirtFSError.self) { try convertLayer(upper, dialect: .user, whiteouts: .mapped) }
        #expect(try hostDump(upper) == before)
        try convertLayer(upper, dialect: .user, whiteouts: .mapped, force: true)
        #expect(try hostDump(upper).contains { $0.hasPrefix("/redo|") && $0.contains("user.overlay.redirect=" + Bytes.hex(Array("/renamed".utf8))) })
    }

    @Test("a re-run finishes what an interrupted run left: both forms of a whiteout, both marker forms, a temporary")
    func rerunCompletes() throws {
        let t = TemporaryDirectory()
        let clean = t.sub("clean"), broken = t.sub("broken")
        try materialize("overlay/oci-upper.tree", at: clean)
        try materialize("overlay/oci-upper.tree", at: broken)
        try convertLayer(clean, dialect: .trusted, whiteouts: .char)
        try convertLayer(broken, dialect: .trusted, whiteouts: .char)
        let expected = try hostDump(clean)
        // The states an interrupted run leaves: the new form in place, the old not yet removed.
        let spare = t.sub("spare")
        try materialize("overlay/oci-upper.tree", at: spare)
        #expect(shell("""
            cd '\(broken)' && cp -a '\(spare)/.wh.lib' . && cp -a '\(spare)/usr/share/doc/.wh..wh..opq' usr/share/doc/ \
            && touch etc/.virtfs-tools.999.tmp && setfattr -n user.overlay.opaque -v y usr/share/doc \
            && setfattr -n user.overlay.opaque -v y usr/share/doc
            """) == 0)
        try convertLayer(broken, dialect: .trusted, whiteouts: .char)
        // The run keeps directories' times as it found them, and the simulation above changed
        // them: put back what the interrupted run would have left.
        #expect(shell("touch -d @1700000100 '\(broken)' '\(broken)/etc' && touch -d @1700000200 '\(broken)/usr/share/doc'") == 0)
        #expect(try hostDump(broken) == expected)
    }

    @Test("in mapped-file, the states between a whiteout's data and metadata renames are finished by a re-run")
    func mappedFileWindows() throws {
        let t = TemporaryDirectory()
        let spec = try TreeSpec(text: """
            dir . 0755 0:0
            dir d 0755 0:0
            char d/w 0000 0:0 rdev=0:0 mtime=1700000000
            file d/keep 0644 0:0 content=k
            """)
        let a = t.sub("a"), b = t.sub("b")
        for dir in [a, b] { try spec.materialize(at: Array(dir.utf8), model: .mappedFile, placement: HostPlacement()) }
        let temporary = Array(".virtfs-tools.4242.tmp".utf8)
        // mapped -> xattr: the new data is renamed over first; the old metadata (char) is still there.
        try convertLayer(a, model: .mappedFile, dialect: .user, whiteouts: .xattr)
        let xattrForm = try hostDump(a, times: false)
        do {
            let d = try DirectoryContext.open(path: Array((b + "/d").utf8))
            try MappedFileCodec().create(GuestAttributes(type: .regular, permissions: 0, uid: 0, gid: 0), named: temporary, in: d,
                                         content: .empty, placement: HostPlacement())
            try Sys.setXattr(d.fd, temporary, raw: Array("user.overlay.whiteout".utf8), [])
            try Sys.rename(d.fd, temporary, d.fd, Array("w".utf8))
            let o = try OverlayEntry(try HostEntry(directory: d, name: Array("w".utf8), path: []), model: .mappedFile)
            #expect(o.whiteout?.form == .mapped, "still a whiteout between the two renames")
        }
        try convertLayer(b, model: .mappedFile, dialect: .user, whiteouts: .xattr)
        #expect(try hostDump(b, times: false) == xattrForm)
        // xattr -> mapped: the new metadata (char) is renamed first; the old data (with the xattr) is still there.
        try convertLayer(a, model: .mappedFile, whiteouts: .mapped)
        let mappedForm = try hostDump(a, times: false)
        do {
            let d = try DirectoryContext.open(path: Array((b + "/d").utf8))
            try MappedFileCodec().create(GuestAttributes(type: .characterDevice, permissions: 0, uid: 0, gid: 0), named: temporary, in: d,
                                         content: .empty, placement: HostPlacement())
            try Sys.rename(try d.metadataDirectory()!, temporary, try d.metadataDirectory()!, Array("w".utf8))
            let o = try OverlayEntry(try HostEntry(directory: d, name: Array("w".utf8), path: []), model: .mappedFile)
            #expect(o.whiteout != nil, "still a whiteout between the two renames")
        }
        try convertLayer(b, model: .mappedFile, whiteouts: .mapped)
        #expect(try hostDump(b, times: false) == mappedForm)
    }

    @Test("--output copies the layer with every xattr and converts the copy; the layer is only read")
    func outputCopy() throws {
        let t = TemporaryDirectory()
        _ = try kernelLayers(t)
        let upper = t.path + "/upper", inPlace = t.path + "/inplace", out = t.sub("out")
        #expect(shell("cp -a '\(upper)' '\(inPlace)'") == 0)
        let before = try hostDump(upper)
        var failures: [VirtFSError] = []
        OverlayCopy.copy(try Walker.exportRoot(Array(upper.utf8)), into: try Walker.exportRoot(Array(out.utf8))) { failures.append($0) }
        #expect(failures.isEmpty)
        #expect(try hostDump(out) == before)
        try convertLayer(out, dialect: .user, whiteouts: .mapped)
        try convertLayer(inPlace, dialect: .user, whiteouts: .mapped)
        #expect(try hostDump(upper) == before)
        #expect(try hostDump(out) == hostDump(inPlace))
    }

    @Test("--xattrmap renames trusted.* the way virtiofsd stores it, and back")
    func xattrMap() throws {
        let t = TemporaryDirectory()
        _ = try kernelLayers(t)
        let upper = t.path + "/upper"
        #expect(shell("setfattr -n trusted.other -v 0x00ff '\(upper)/etc/passwd' && setfattr -n user.note -v hi '\(upper)/etc/passwd'") == 0)
        let before = try hostDump(upper)
        let map = try XattrMap(":map:trusted.:user.virtiofs.:")
        try convertLayer(upper, map: map)
        let mapped = try hostDump(upper)
        #expect(!mapped.contains { $0.contains("|trusted.") })
        #expect(mapped.contains { $0.hasPrefix("/etc/passwd|") && $0.contains("user.virtiofs.trusted.other=00ff") && $0.contains("user.note=6869") })
        #expect(mapped.contains { $0.hasPrefix("/redo|") && $0.contains("user.virtiofs.trusted.overlay.opaque=79") })
        try convertLayer(upper, map: map, toServer: false)
        #expect(try hostDump(upper) == before)
    }

    @Test("--check names each redirect or metacopy key as a blocker under userxattr only")
    func checkUserxattrKeys() {
        var scan = OverlayScan()
        scan.keys = ["redirect": 2, "metacopy": 1, "opaque": 4]
        let layer = OverlayCheck.Layer(path: Array("upper".utf8), scan: scan, isUpper: true)
        var target = OverlayCheck.Target()
        #expect(!OverlayCheck.findings([layer], target: target).contains { $0.text.contains("userxattr disables") })
        target.userxattr = true
        let texts = OverlayCheck.findings([layer], target: target).filter { $0.severity == .blocker }.map(\.text)
        #expect(texts.filter { $0.contains("userxattr disables") }.sorted() == [
            "1 entries use overlay.metacopy, which userxattr disables: renamed directories / metacopy files would show wrong contents",
            "2 entries use overlay.redirect, which userxattr disables: renamed directories / metacopy files would show wrong contents",
        ])
    }

    @Test("--check reads the dialect and whiteout form and names what stops a userxattr guest over 9p")
    func check() throws {
        let t = TemporaryDirectory()
        _ = try kernelLayers(t)
        let upper = t.path + "/upper"
        let scan = OverlayScan.scan(try Walker.exportRoot(Array(upper.utf8)), model: .passthrough)
        #expect(scan.dominantDialect == .trusted && scan.whiteouts[.char] == 5 && scan.opaqueXattr == 1)
        var target = OverlayCheck.Target()
        target.userxattr = true
        target.over9p = .mappedXattr
        let layer = OverlayCheck.Layer(path: Array(upper.utf8), scan: scan, isUpper: true)
        let before = OverlayCheck.findings([layer], target: target)
        #expect(before.contains { $0.severity == .blocker && $0.text.contains("trusted dialect") })
        #expect(before.contains { $0.severity == .blocker && $0.text.contains("impure") })
        try convertModel(upper, from: .passthrough, to: .mappedXattr)
        try convertLayer(upper, model: .mappedXattr, dialect: .user, whiteouts: .mapped)
        let after = OverlayCheck.findings([OverlayCheck.Layer(path: Array(upper.utf8), scan: OverlayScan.scan(try Walker.exportRoot(Array(upper.utf8)), model: .mappedXattr), isUpper: true)], target: target)
        #expect(!after.contains { $0.severity == .blocker }, "\(after.map(\.text))")
        #expect(after.filter { $0.severity == .limit }.count == 2)
        let virtiofs = after.filter { $0.xattrmap != nil }
        #expect(virtiofs.count == 1 && virtiofs[0].severity == .note && virtiofs[0].xattrmap == ":map:trusted.:user.virtiofs.:")
        #expect(virtiofs[0].text.contains("virtio-fs") && virtiofs[0].text.contains("virtfs-overlay --xattrs virtiofs")
            && virtiofs[0].text.contains("virtiofsd -o xattrmap=:map:trusted.:user.virtiofs.:"))
        // Read-only stacks over 9p (no upper layer) have no copy-up to fail: no pointer to virtio-fs.
        let lowerOnly = OverlayCheck.findings([OverlayCheck.Layer(path: Array(upper.utf8), scan: OverlayScan.scan(try Walker.exportRoot(Array(upper.utf8)), model: .mappedXattr), isUpper: false)], target: target)
        #expect(!lowerOnly.contains { $0.xattrmap != nil })
    }

    @Test("--check --over-virtiofs wants the virtiofs dialect, which a host root mount does not read")
    func checkOverVirtiofs() throws {
        let t = TemporaryDirectory()
        _ = try kernelLayers(t)
        let upper = t.path + "/upper"
        func findings(_ target: OverlayCheck.Target) throws -> [OverlayCheck.Finding] {
            let scan = OverlayScan.scan(try Walker.exportRoot(Array(upper.utf8)), model: .passthrough)
            return OverlayCheck.findings([OverlayCheck.Layer(path: Array(upper.utf8), scan: scan, isUpper: true)], target: target)
        }
        var guest = OverlayCheck.Target()
        guest.overVirtiofs = true
        #expect(guest.summary.hasSuffix("over virtio-fs (xattrmap :map:trusted.:user.virtiofs.:)"))
        let host = OverlayCheck.Target()
        #expect(try findings(guest).contains { $0.severity == .blocker && $0.text.contains("run virtfs-overlay --xattrs virtiofs") })
        #expect(try !findings(host).contains { $0.severity == .blocker })
        try convertLayer(upper, dialect: .virtiofs)
        let served = try findings(guest)
        #expect(!served.contains { $0.severity == .blocker || $0.severity == .limit }, "\(served.map(\.text))")
        #expect(try findings(host).contains { $0.severity == .blocker && $0.text.contains("virtiofs dialect") && $0.text.contains("--xattrs trusted") })
    }
}
