import CXML
import Glibc
import VirtFSCore

/// A host user and group, as QEMU runs.
public struct HostID: Sendable, Equatable, CustomStringConvertible {
    public var uid: UInt32
    public var gid: UInt32
    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }
    public static let root = HostID(uid: 0, gid: 0)
    /// `65534:65534 (nobody)`: numbers always, the host's name when it has one.
    public var description: String {
        let name = getpwuid(uid).map { String(cString: $0.pointee.pw_name) }
        return "\(uid):\(gid)" + (name.map { " (\($0))" } ?? "")
    }
}

/// A tree about to be served by QEMU's 9p `local` backend: where it is, the model it is written
/// in, and the user QEMU must run as to serve it (virtfs-qemu).
public struct QemuExport: Sendable {
    /// The real path of the export root: what QEMU's `path=` must name.
    public var path: [UInt8]
    public var model: SecurityModel
    /// Why this model: the detection's explanation, or that the user named it.
    public var reason: String
    /// True when the model was detected, not given: passthrough and none look alike on the host.
    public var detected: Bool
    /// Host owner of the export root.
    public var owner: HostID

    /// passthrough makes the guest's owners, device nodes and set-id files real, which takes
    /// root; the other models keep files QEMU creates owned by QEMU's user (mode 0600/0700 in the
    /// mapped models), so QEMU must be that user: the owner of the export root.
    public var qemuUser: HostID { model == .passthrough ? .root : owner }

    public var qemuUserReason: String {
        model == .passthrough
            ? "passthrough chowns and makes device nodes as the guest asks, which takes root"
            : "the owner of the export root; \(model.rawValue) keeps what the guest creates owned by QEMU's user"
    }

    /// Reads the tree (bounded, as every tool detects its model).
    public static func inspect(_ tree: [UInt8], model explicit: SecurityModel?) throws(VirtFSError) -> QemuExport {
        let location = try Walker.exportRoot(tree)
        let (model, detection) = try OperandResolver(root: nil).model(for: location, explicit: explicit)
        let st = try location.entry().stat
        return QemuExport(path: try OperandResolver.realPath(tree), model: model,
                          reason: detection?.explanation ?? "\(model.rawValue) (given with --model)",
                          detected: detection != nil, owner: HostID(uid: st.uid, gid: st.gid))
    }
}

/// The QEMU command-line and libvirt forms of a 9p share, both ways: the options that serve an
/// export, and the shares a given command line or domain XML declares.
public enum QemuGlue {
    /// 9p device models that take `fsdev=ID`.
    static let devices: Set<String> = ["virtio-9p-pci", "virtio-9p-device", "virtio-9p-ccw", "virtio-9p-pci-non-transitional", "virtio-9p-pci-transitional"]

    /// QEMU's option syntax doubles a comma inside a value.
    static func optionValue(_ bytes: [UInt8]) -> [UInt8] {
        bytes.flatMap { $0 == UInt8(ascii: ",") ? [$0, $0] : [$0] }
    }

    /// The tree's base name when it is a plain name QEMU and the guest's mount take as is, else `share`.
    public static func defaultTag(_ path: [UInt8]) -> String {
        let name = Bytes.splitParent(path).name
        let plain = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-".utf8))
        return !name.isEmpty && name.count <= 31 && name.allSatisfy(plain.contains) && name != Array(".".utf8) && name != Array("..".utf8)
            ? String(decoding: name, as: UTF8.self) : "share"
    }

    /// The arguments that serve `export` as `tag`: `-fsdev local,... -device virtio-9p-pci,...`.
    public static func arguments(_ export: QemuExport, tag: String, id: String) -> [[UInt8]] {
        [Array("-fsdev".utf8),
         Array("local,id=\(id),path=".utf8) + optionValue(export.path) + Array(",security_model=\(export.model.rawValue)".utf8),
         Array("-device".utf8),
         Array("virtio-9p-pci,fsdev=\(id),mount_tag=".utf8) + optionValue(Array(tag.utf8))]
    }

    /// What `virtfs-qemu options` prints: the arguments as a shell reads them back (or the
    /// libvirt elements), the user QEMU must run as, and why the tree is in its model.
    public static func options(_ export: QemuExport, tag: String?, id: String, libvirt asXML: Bool) -> [UInt8] {
        let tag = tag ?? defaultTag(export.path)
        if asXML {
            return Array("<!-- \(String(decoding: export.path, as: UTF8.self)): \(export.reason) -->\n".utf8) + libvirt(export, tag: tag, id: id)
        }
        return Array(arguments(export, tag: tag, id: id).map(shellQuote).joined(separator: [UInt8(ascii: " ")]))
            + Array("\n# QEMU must run as \(export.qemuUser): \(export.qemuUserReason)\n# model: \(export.reason)\n".utf8)
    }

    /// One argument as a POSIX shell reads it back (single quotes when it needs any).
    public static func shellQuote(_ word: [UInt8]) -> [UInt8] {
        let plain = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-".utf8))
        if !word.isEmpty && word.allSatisfy(plain.contains) { return word }
        return [UInt8(ascii: "'")] + word.flatMap { $0 == UInt8(ascii: "'") ? Array("'\\''".utf8) : [$0] } + [UInt8(ascii: "'")]
    }

    /// libvirt's name for a model; mapped-file has none.
    public static func accessMode(_ model: SecurityModel) -> String? {
        [SecurityModel.passthrough: "passthrough", .mappedXattr: "mapped", .none: "squash"][model]
    }

    /// XML's five predefined entities, for the quote-agnostic attribute values written here.
    static func xmlEscape(_ bytes: [UInt8]) -> [UInt8] {
        let entities: [UInt8: String] = [UInt8(ascii: "&"): "&amp;", UInt8(ascii: "<"): "&lt;", UInt8(ascii: ">"): "&gt;", UInt8(ascii: "'"): "&apos;", UInt8(ascii: "\""): "&quot;"]
        return bytes.flatMap { entities[$0].map { Array($0.utf8) } ?? [$0] }
    }

    /// The libvirt `<filesystem>` element (or, for mapped-file, which libvirt cannot express, the
    /// `<qemu:commandline>` that passes the options through) and the `<seclabel>` that runs QEMU
    /// as the user the export needs.
    public static func libvirt(_ export: QemuExport, tag: String, id: String) -> [UInt8] {
        var out: [UInt8] = []
        func line(_ text: String) { out += Array((text + "\n").utf8) }
        if let mode = accessMode(export.model) {
            line("<filesystem type='mount' accessmode='\(mode)'>")
            out += Array("  <source dir='".utf8) + xmlEscape(export.path) + Array("'/>\n".utf8)
            out += Array("  <target dir='".utf8) + xmlEscape(Array(tag.utf8)) + Array("'/>\n".utf8)
            line("</filesystem>")
        } else {
            line("<!-- libvirt has no accessmode for mapped-file: the options go through <qemu:commandline>, in <domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'> -->")
            line("<qemu:commandline>")
            for argument in arguments(export, tag: tag, id: id) {
                out += Array("  <qemu:arg value='".utf8) + xmlEscape(argument) + Array("'/>\n".utf8)
            }
            line("</qemu:commandline>")
        }
        line("<!-- QEMU must run as \(export.qemuUser): \(export.qemuUserReason); in <domain>: -->")
        line("<seclabel type='static' model='dac' relabel='no'><label>+\(export.qemuUser.uid):+\(export.qemuUser.gid)</label></seclabel>")
        return out
    }

    // MARK: reading a command line or a domain

    /// A 9p share a command line or a domain declares.
    public struct Share: Sendable, Equatable {
        /// How the user wrote it, for messages: `-fsdev fs0`, `-virtfs export`, `<filesystem> export`.
        public var origin: String
        public var driver: String
        public var path: [UInt8]?
        /// The `security_model` (or libvirt accessmode) as written; nil when absent.
        public var model: String?
        public var id: String?
        /// The mount tag the guest uses; nil for an `-fsdev` no `-device` uses.
        public var tag: [UInt8]?
        /// `-fsdev` needs a 9p `-device` naming its id; `-virtfs` and libvirt make one.
        public var hasDevice: Bool
        /// `readonly=on` (libvirt `<readonly/>`): QEMU then needs no write access.
        public var readonly = false
    }

    /// QEMU's `key=value,...` with `,,` for a comma; a first field without `=` is keyed `first`.
    static func parseOptions(_ text: [UInt8], first: String) -> [(String, [UInt8])] {
        var fields: [[UInt8]] = [[]]
        var i = 0
        while i < text.count {
            let escaped = text[i] == UInt8(ascii: ",") && i + 1 < text.count && text[i + 1] == UInt8(ascii: ",")
            if text[i] == UInt8(ascii: ",") && !escaped { fields.append([]) } else { fields[fields.count - 1].append(text[i]) }
            i += escaped ? 2 : 1
        }
        return fields.enumerated().compactMap { index, field in
            if let eq = field.firstIndex(of: UInt8(ascii: "=")) {
                return (String(decoding: field[..<eq], as: UTF8.self), Array(field[(eq + 1)...]))
            }
            if field.isEmpty { return nil }
            return index == 0 ? (first, field) : (String(decoding: field, as: UTF8.self), Array("on".utf8))
        }
    }

    /// The 9p shares of a QEMU command line: `-fsdev` (with the `-device` that uses it) and `-virtfs`.
    public static func shares(commandLine args: [[UInt8]]) -> [Share] {
        var shares: [Share] = []
        var deviceTags: [String: [UInt8]] = [:]
        var i = 0
        while i < args.count {
            // QEMU takes `--fsdev` for `-fsdev`.
            let word = String(decoding: args[i], as: UTF8.self)
            let name = word.hasPrefix("--") ? String(word.dropFirst()) : word
            let value = i + 1 < args.count ? args[i + 1] : nil
            if let value, name == "-fsdev" || name == "-virtfs" || name == "-device" {
                i += 2
                let fields = parseOptions(value, first: name == "-device" ? "driver" : "fsdriver")
                func get(_ key: String) -> [UInt8]? { fields.last { $0.0 == key }?.1 }
                func text(_ key: String) -> String? { get(key).map { String(decoding: $0, as: UTF8.self) } }
                let readonly = ["on", "true", "yes"].contains(text("readonly") ?? "off")
                switch name {
                case "-device":
                    if let driver = text("driver"), devices.contains(driver), let fsdev = text("fsdev") {
                        deviceTags[fsdev] = get("mount_tag") ?? []
                    }
                default:
                    // -virtfs makes its own device; an -fsdev's comes from a -device naming it.
                    let fsdev = name == "-fsdev", tag = fsdev ? nil : text("mount_tag")
                    shares.append(Share(origin: "\(name) \(fsdev ? text("id") ?? "(no id)" : tag ?? "(no mount_tag)")",
                                        driver: text("fsdriver") ?? "", path: get("path"), model: text("security_model"),
                                        id: text("id"), tag: fsdev ? nil : get("mount_tag"), hasDevice: !fsdev, readonly: readonly))
                }
            } else {
                i += 1
            }
        }
        for index in shares.indices where shares[index].origin.hasPrefix("-fsdev") {
            if let id = shares[index].id, let tag = deviceTags[id] {
                shares[index].tag = tag
                shares[index].hasDevice = true
            }
        }
        return shares
    }

    /// A libvirt domain's 9p shares (`<filesystem type='mount'>`, and `-fsdev`/`-virtfs` in
    /// `<qemu:commandline>`) and the user its `<seclabel model='dac'>` runs QEMU as.
    public static func shares(libvirt xml: [UInt8]) -> (shares: [Share], user: HostID?) {
        var shares: [Share] = []
        var passthrough: [[UInt8]] = []
        var user: HostID?
        XMLElement.parse(xml) { e in
            switch e.name {
            case "filesystem":
                let children = e.children
                func child(_ name: String) -> XMLElement? { children.last { $0.name == name } }
                guard e.string("type") ?? "mount" == "mount", child("driver")?.string("type") != "virtiofs" else { return }
                let mode = e.string("accessmode") ?? "passthrough"
                // libvirt's names for the models (accessMode), back to QEMU's; others as written.
                let model = SecurityModel.allCases.first { accessMode($0) == mode }?.rawValue ?? mode
                let target = child("target")?.attribute("dir")
                shares.append(Share(origin: "<filesystem> \(target.map { String(decoding: $0, as: UTF8.self) } ?? "(no target)")",
                                    driver: "local", path: child("source")?.attribute("dir"), model: model, id: nil, tag: target,
                                    hasDevice: true, readonly: child("readonly") != nil))
            case "qemu:arg":
                if let value = e.attribute("value") { passthrough.append(value) }
            case "seclabel" where e.string("model") == "dac":
                // `+UID:+GID` (numbers) or `USER:GROUP` (names).
                guard let label = e.children.first(where: { $0.name == "label" }) else { return }
                let parts = String(decoding: label.text, as: UTF8.self).split(separator: ":")
                    .map { $0.hasPrefix("+") ? String($0.dropFirst()) : String($0) }
                if parts.count == 2, let uid = UInt32(parts[0]) ?? getpwnam(parts[0])?.pointee.pw_uid,
                   let gid = UInt32(parts[1]) ?? getgrnam(parts[1])?.pointee.gr_gid {
                    user = HostID(uid: uid, gid: gid)
                }
            default:
                break
            }
        }
        return (shares + Self.shares(commandLine: passthrough), user)
    }

    // MARK: checking

    /// One way a share does not serve the tree as it is.
    public struct Mismatch: Sendable, Equatable {
        /// `security-model`, `path`, `no-device`, `qemu-user`, `qemu-access`, `driver`.
        public var check: String
        public var share: String?
        public var text: String
    }

    /// Everything that makes the shares of a command line or domain serve `export` wrongly, and
    /// notes (`passthrough` and `none` look alike on the host). No share with the tree's path is
    /// itself a mismatch.
    public static func check(_ export: QemuExport, shares: [Share], qemuUser: HostID) -> (mismatches: [Mismatch], notes: [String], matched: [Share]) {
        var mismatches: [Mismatch] = []
        var notes: [String] = []
        let tree = String(decoding: export.path, as: UTF8.self)
        let matched = shares.filter { $0.path.flatMap { try? OperandResolver.realPath($0) } == export.path }
        if matched.isEmpty {
            let others = shares.compactMap { s in s.path.map { "\(s.origin) path=\(String(decoding: $0, as: UTF8.self))" } }
            mismatches.append(Mismatch(check: "path", share: nil,
                text: "no 9p share has path=\(tree)" + (others.isEmpty ? " (no -fsdev, -virtfs or <filesystem> at all)" : "; the shares name: " + others.joined(separator: ", "))))
        }
        for share in matched {
            func add(_ check: String, _ text: String) { mismatches.append(Mismatch(check: check, share: share.origin, text: text)) }
            if share.driver != "local" {
                add("driver", "fsdev driver '\(share.driver)' is not 'local': the security models and this tree's metadata are the local backend's")
                continue
            }
            if !share.hasDevice {
                add("no-device", "no 9p -device (virtio-9p-pci,fsdev=\(share.id ?? "?"),mount_tag=...) uses this fsdev: the guest has nothing to mount")
            }
            guard let written = share.model else {
                add("security-model", "no security_model: QEMU refuses to start ('local' needs one); the tree is \(export.reason)")
                continue
            }
            guard let given = SecurityModel(name: written) else {
                add("security-model", "security_model=\(written) is not a QEMU model (passthrough, none, mapped-xattr or mapped, mapped-file)")
                continue
            }
            if given != export.model {
                let alike: Set<SecurityModel> = [.passthrough, .none]
                if export.detected && alike.contains(given) && alike.contains(export.model) {
                    notes.append("\(share.origin): security_model=\(written): passthrough and none look alike on the host; give --model to check which one the tree was written in")
                } else {
                    let spelled = share.origin.hasPrefix("<filesystem>") ? "accessmode='\(accessMode(given) ?? written)'" : "security_model=\(written)"
                    add("security-model", "\(spelled), but the tree is \(export.reason): \(consequence(tree: export.model, served: given))")
                }
            }
            if given == .passthrough && qemuUser.uid != 0 {
                add("qemu-user", "QEMU runs as \(qemuUser), but passthrough needs root (it chowns and makes device nodes as the guest asks): the guest's chown, mknod and set-id bits fail")
            }
            if given.isMapped && qemuUser.uid != 0 && qemuUser.uid != export.owner.uid {
                add("qemu-user", "QEMU runs as \(qemuUser), not as the export root's owner \(export.owner): files QEMU made as the owner (mode 0600, directories 0700) fail with EACCES in the guest")
            }
            if given.isMapped && qemuUser.uid == 0 && export.owner.uid != 0 {
                notes.append("\(share.origin): QEMU runs as root: what the guest creates will be root's (mode 0600), which QEMU as the export root's owner \(export.owner) cannot use later")
            }
            if let denied = access(export.path, user: qemuUser, write: given != .passthrough && !share.readonly) {
                add("qemu-access", denied)
            }
        }
        return (mismatches, notes, matched)
    }

    /// What `virtfs-qemu check` prints for the tree shown as `name`: a line per mismatch and per
    /// note, then the verdict; and whether the shares match.
    public static func report(_ export: QemuExport, shares: [Share], qemuUser user: HostID, name: String) -> (text: String, matches: Bool) {
        let result = check(export, shares: shares, qemuUser: user)
        var text = result.mismatches.map { "\(name): mismatch \($0.check): \($0.share.map { $0 + ": " } ?? "")\($0.text)\n" }.joined()
            + result.notes.map { "\(name): note: \($0)\n" }.joined()
        let n = result.mismatches.count
        text += n == 0
            ? "\(name): matches: \(result.matched.map(\.origin).joined(separator: ", ")) serves it as \(export.model.rawValue), QEMU as \(user)\n"
            : "\(name): \(n) mismatch\(n == 1 ? "" : "es") (the tree is \(export.reason); QEMU runs as \(user))\n"
        return (text, n == 0)
    }

    /// What the guest experiences when a tree written in `tree` is served as `served`.
    public static func consequence(tree: SecurityModel, served: SecurityModel) -> String {
        switch (tree, served) {
        case (.mappedXattr, _):
            return "the guest would ignore user.virtfs.* and see the host's owners and modes, with its symlinks, devices and fifos as regular files"
        case (.mappedFile, _):
            return "the guest would ignore .virtfs_metadata, see the host's owners and modes, its symlinks, devices and fifos as regular files, and the .virtfs_metadata directories as ordinary ones"
        case (_, .mappedXattr), (_, .mappedFile):
            return "the guest would see the host's owners, but store its own changes as \(served == .mappedXattr ? "user.virtfs.* xattrs" : ".virtfs_metadata files"), mixing two models in one tree (and real host symlinks fail readlink with ELOOP before QEMU 11)"
        default:
            return "the guest's chown and mknod would \(served == .none ? "be silently ignored" : "need QEMU to run as root")"
        }
    }

    /// Whether `user` can reach and read (and, for `write`, change) the directory `path`, by the
    /// permission bits of it and every directory above it (primary group only, as QEMU runs
    /// under setpriv --clear-groups or libvirt's DAC label; ACLs are not consulted). Nil when it can.
    public static func access(_ path: [UInt8], user: HostID, write: Bool) -> String? {
        if user.uid == 0 { return nil }
        let parts = Bytes.components(path)
        for depth in 0...parts.count {
            let dir = Array("/".utf8) + parts.prefix(depth).joined(separator: [UInt8(ascii: "/")])
            let last = depth > 0 && depth == parts.count
            let (need, words): (UInt32, String) = last ? (write ? (7, "read, write and search") : (5, "read and search")) : (1, "search")
            let st: HostStat
            do { st = try Sys.stat(path: dir) } catch {
                return "\(String(decoding: dir, as: UTF8.self)): \(String(cString: strerror(error.errno ?? EIO)))"
            }
            let shift: UInt32 = st.uid == user.uid ? 6 : (st.gid == user.gid ? 3 : 0)
            if (st.mode >> shift) & need != need {
                return "QEMU's user \(user) cannot \(words) \(String(decoding: dir, as: UTF8.self)) (owner \(st.uid):\(st.gid), mode 0\(String(st.mode & 0o7777, radix: 8))): QEMU fails to start or the guest gets EACCES"
            }
        }
        return nil
    }
}

/// An element of an XML document as libxml2 reads it (recovering from what it can, never
/// fetching anything from the network), for libvirt domain files.
struct XMLElement {
    let node: xmlNodePtr

    /// Calls `body` with every element of a document or of a fragment (such as what `virtfs-qemu
    /// options --libvirt` prints), in document order.
    static func parse(_ xml: [UInt8], _ body: (XMLElement) -> Void) {
        // Read inside one more element, so that several top-level elements are one document;
        // an XML declaration, which only the start of a document may hold, goes first.
        var content = xml[...]
        if content.drop(while: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }).starts(with: Array("<?xml".utf8)),
           let end = content.firstRange(of: Array("?>".utf8)) { content = content[end.upperBound...] }
        let wrapped = Array("<virtfs-tools>".utf8) + content + Array("</virtfs-tools>".utf8)
        let options = Int32(XML_PARSE_RECOVER.rawValue | XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)
        guard let document = wrapped.withUnsafeBytes({ xmlReadMemory($0.baseAddress, Int32(clamping: $0.count), nil, nil, options) }) else { return }
        defer { xmlFreeDoc(document) }
        func visit(_ e: XMLElement) {
            body(e)
            e.children.forEach(visit)
        }
        xmlDocGetRootElement(document).map { visit(XMLElement(node: $0)) }
    }

    /// The name as written, prefix included (`qemu:arg`), whether or not the prefix is declared.
    var name: String {
        let local = String(cString: node.pointee.name)
        return node.pointee.ns?.pointee.prefix.map { String(cString: $0) + ":" + local } ?? local
    }

    var children: [XMLElement] {
        var elements: [XMLElement] = []
        var next = node.pointee.children as xmlNodePtr?
        while let child = next {
            if child.pointee.type == XML_ELEMENT_NODE { elements.append(XMLElement(node: child)) }
            next = child.pointee.next
        }
        return elements
    }

    /// An attribute's value, entities decoded.
    func attribute(_ name: String) -> [UInt8]? {
        owned(xmlGetProp(node, Array(name.utf8) + [0]))
    }

    func string(_ name: String) -> String? { attribute(name).map { String(decoding: $0, as: UTF8.self) } }

    /// The text inside the element.
    var text: [UInt8] { owned(xmlNodeGetContent(node)) ?? [] }

    /// The bytes of a string libxml2 made for the caller, which frees it.
    private func owned(_ string: UnsafeMutablePointer<xmlChar>?) -> [UInt8]? {
        guard let string else { return nil }
        defer { virtfs_xml_free(string) }
        return Array(UnsafeBufferPointer(start: string, count: strlen(UnsafeRawPointer(string).assumingMemoryBound(to: CChar.self))))
    }
}
