import Glibc

/// One entry of a layer as overlayfs would read it: its guest view (in the tree's model), the
/// overlay xattrs on the host object, and whether it is a whiteout or an opaque marker.
public struct OverlayEntry {
    public let entry: HostEntry
    public let view: GuestView
    /// Host xattr names and what they are (overlay ones parsed; others nil).
    public let xattrNames: [[UInt8]]
    public let overlay: [(name: [UInt8], dialect: OverlayDialect, key: String)]
    /// The deleted name and the form, when this entry is a whiteout.
    public let whiteout: (form: WhiteoutForm, name: [UInt8])?
    /// `.wh..wh..opq`.
    public let isOpaqueMarker: Bool

    /// Reads and classifies one entry. `model` is the tree's security model.
    public init(_ entry: HostEntry, model: SecurityModel) throws(VirtFSError) {
        self.entry = entry
        view = try model.codec(lenient: true).decode(entry)
        let names = try entry.xattrNames()
        xattrNames = names
        overlay = names.compactMap { name in
            OverlayDialect.parse(name).map { (name, $0.dialect, String(decoding: $0.key, as: UTF8.self)) }
        }
        let host = entry.stat.fileType
        let name = entry.name
        isOpaqueMarker = name == WhiteoutForm.ociOpaqueMarker && view.type == .regular
        if isOpaqueMarker || name.starts(with: WhiteoutForm.aufsMetaPrefix) {
            whiteout = nil
        } else if name.starts(with: WhiteoutForm.ociPrefix) && name.count > WhiteoutForm.ociPrefix.count && view.type == .regular {
            whiteout = (.oci, Array(name[WhiteoutForm.ociPrefix.count...]))
        } else if host == .characterDevice && entry.stat.rdev == .zero {
            whiteout = (.char, name)
        } else if model.isMapped && host == .regular && view.type == .characterDevice && view.attributes.rdev == .zero {
            whiteout = (.mapped, name)
        } else if host == .regular && entry.stat.size == 0 && overlay.contains(where: { $0.key == OverlayKey.whiteout }) {
            whiteout = (.xattr, name)
        } else {
            whiteout = nil
        }
    }

    /// The value of overlay key `key` in any dialect (the first found).
    public func value(_ key: String) throws(VirtFSError) -> [UInt8]? {
        for x in overlay where x.key == key {
            if let v = try entry.xattr(raw: x.name) { return v }
        }
        return nil
    }
}

/// What a read-only walk of a layer found: the facts `--check` reports and the refusals a
/// conversion checks before it changes anything.
public struct OverlayScan: Sendable {
    public var entries = 0
    /// Overlay xattrs per dialect.
    public var dialects: [OverlayDialect: Int] = [:]
    /// Overlay xattrs per key, and the first few paths carrying each.
    public var keys: [String: Int] = [:]
    public var keyPaths: [String: [[UInt8]]] = [:]
    /// Non-empty file handles / fs ids (origin, upper, uuid): valid on one filesystem only.
    public var handles: [(path: [UInt8], name: String)] = []
    public var whiteouts: [WhiteoutForm: Int] = [:]
    /// Directories marked opaque by xattr (`y`), by `.wh..wh..opq`, and those marked `x`.
    public var opaqueXattr = 0
    public var opaqueMarkers = 0
    public var opaqueX = 0
    /// Directories holding char/mapped whiteouts without `user.overlay.impure` (a 9p guest
    /// with userxattr lists their whiteouts as phantom names).
    public var whiteoutDirsWithoutUserImpure: [[UInt8]] = []
    public var failures: [VirtFSError] = []

    /// The dialect most of the layer's overlay xattrs are in, if any.
    public var dominantDialect: OverlayDialect? {
        dialects.max { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue > $1.key.rawValue) }?.key
    }

    public init() {}

    public static func scan(_ root: Walker.Location, model: SecurityModel, oneFileSystem: Bool = false) -> OverlayScan {
        var scan = OverlayScan()
        // Per directory: its path, the char/mapped whiteouts in it, and whether it is marked
        // impure in the user dialect.
        typealias Directory = (path: [UInt8], whiteouts: Int, userImpure: Bool)
        var walkOptions = Walker.Options(recursive: true, oneFileSystem: oneFileSystem, model: model)
        walkOptions.auditStorage = false
        Walker(options: walkOptions).walk(root, visit: { (entry, parent: inout Directory?) -> Directory? in
            if TemporaryName.matches(entry.name) { return nil }
            do throws(VirtFSError) {
                let o = try OverlayEntry(entry, model: model)
                scan.entries += 1
                for x in o.overlay {
                    scan.dialects[x.dialect, default: 0] += 1
                    scan.keys[x.key, default: 0] += 1
                    if scan.keyPaths[x.key, default: []].count < 5 { scan.keyPaths[x.key, default: []].append(entry.path) }
                    if OverlayKey.handles.contains(x.key), let v = try entry.xattr(raw: x.name), !v.isEmpty {
                        scan.handles.append((entry.path, String(decoding: x.name, as: UTF8.self)))
                    }
                }
                if let w = o.whiteout {
                    scan.whiteouts[w.form, default: 0] += 1
                    if w.form == .char || w.form == .mapped { parent?.whiteouts += 1 }
                }
                if o.isOpaqueMarker { scan.opaqueMarkers += 1 }
                if o.view.type == .directory && entry.stat.fileType == .directory {
                    switch try o.value(OverlayKey.opaque) {
                    case [UInt8(ascii: "y")]?: scan.opaqueXattr += 1
                    case [UInt8(ascii: "x")]?: scan.opaqueX += 1
                    default: break
                    }
                    let userImpure = o.overlay.contains { $0.dialect == .user && $0.key == OverlayKey.impure }
                    return (entry.path, 0, userImpure)
                }
            } catch {
                scan.failures.append(error)
            }
            return nil
        }, leave: { _, d in
            if d.whiteouts > 0 && !d.userImpure { scan.whiteoutDirsWithoutUserImpure.append(d.path) }
        }, failure: { scan.failures.append($0) })
        return scan
    }
}
