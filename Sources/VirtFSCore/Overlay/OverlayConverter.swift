import Glibc

/// Rewrites an overlay layer (a lower or an upper directory) from one dialect and whiteout form
/// to another, in the tree's security model (overlay.md):
///   - overlay xattrs are renamed to the target dialect, values copied byte for byte;
///   - whiteouts are rebuilt in the target form, keeping their owner, permissions and times
///     (so `.wh.` -> char -> `.wh.` gives back the same layer); opaque markers move with them;
///   - a layer converted to the `user` dialect is prepared for a 9p guest: directories that
///     hold whiteouts get `user.overlay.impure=y`, which makes overlayfs look up every entry
///     instead of trusting d_type (QEMU reports DT_UNKNOWN in mapped models).
///
/// Whiteouts in the `mapped` form are written through the model's codec: a whiteout is just a
/// guest view of type char 0:0. So running this before or after virtfs-convert ends in the same
/// tree, and a tree between the two models keeps its guest view.
///
/// In place, every change is one atomic step or a step a re-run completes:
///   - an xattr is renamed by setting the new name, then removing the old one (a re-run finding
///     both with one value removes the old one);
///   - a whiteout is built complete under `.virtfs-tools.PID.tmp` and renamed into place; when
///     its name changes (`.wh.NAME` <-> `NAME`), the old one goes after (a re-run finding both
///     keeps the one in the target form);
///   - an opaque marker is written before the old marker is removed (same rule).
/// Directories are handled after everything below them (their stream is closed by then), and
/// keep their times.
public struct OverlayConverter {
    public struct Options: Sendable {
        public var model: SecurityModel
        /// Target dialect; nil keeps the layer's.
        public var dialect: OverlayDialect?
        /// Target whiteout form; nil keeps each whiteout's.
        public var whiteouts: WhiteoutForm?
        /// virtiofsd rules for the other xattrs (and overlay ones when `dialect` is nil).
        public var xattrMap: XattrMap?
        /// true: names as virtiofsd stores a guest's names (client -> server); false: back.
        public var xattrMapToServer = true
        /// Convert to the user dialect even when the layer uses redirect or metacopy.
        public var force = false
        /// Host mode and owner of host objects created in a mapped model; nil owner takes the
        /// owner of the directory they are created in (the user QEMU runs as, in an export).
        public var placement = HostPlacement()
        public var oneFileSystem = false
        /// The layer was copied (`--output`): file handles in it no longer match.
        public var copied = false

        public init(model: SecurityModel) {
            self.model = model
        }
    }

    /// One change, planned (dry run) or done.
    public struct Change: Sendable, Equatable {
        public enum Kind: String, Sendable { case xattr, whiteout, opaque, impure, removed }
        public var kind: Kind
        public var path: [UInt8]
        public var from: String
        public var to: String
    }

    public enum Event {
        case change(Change)
        /// A file handle or filesystem id that will not match after this conversion.
        case stale(path: [UInt8], attribute: String)
        case warning(VirtFSError)
        case failed(VirtFSError)
    }

    public struct Summary: Sendable {
        public var changes: [Change.Kind: Int] = [:]
        public var entries = 0
        public var stale = 0
        public var warnings = 0
        public var failures = 0
        public var total: Int { changes.values.reduce(0, +) }
    }

    public let options: Options
    let codec: any ModelCodec

    public init(options: Options) {
        self.options = options
        codec = options.model.codec
    }

    /// The dialect markers are written in: the asked one, else the layer's, else the one the
    /// tree's model suggests (a mapped export exists for a guest: user).
    public func targetDialect(_ scan: OverlayScan) -> OverlayDialect {
        options.dialect ?? scan.dominantDialect ?? (options.model.isMapped ? .user : .trusted)
    }

    /// The whiteout form actually built: `mapped` is a real device outside the mapped models.
    var targetForm: WhiteoutForm? {
        options.whiteouts == .mapped && !options.model.isMapped ? .char : options.whiteouts
    }

    // MARK: refusals before anything changes

    /// `--output`: the refusals first, so that nothing is written for a layer that will not
    /// convert; then the layer copied into a new directory (in a mapped model owned by the
    /// placement's owner, QEMU's user). Returns the copy, which `run` then converts with
    /// `copied` set, or nil when an entry could not be copied (reported through `failure`).
    public func copy(_ root: Walker.Location, intoNew output: [UInt8], failure: (VirtFSError) -> Void) throws(VirtFSError) -> Walker.Location? {
        try refuse(OverlayScan.scan(root, model: options.model, oneFileSystem: options.oneFileSystem))
        var copyFailed = false
        let owner = options.model.isMapped ? options.placement.owner : nil
        let copy = try OverlayCopy.copy(root, intoNew: output, owner: owner) { failure($0); copyFailed = true }
        return copyFailed ? nil : copy
    }

    /// Refuses, before anything changes, redirect/metacopy to the user dialect (userxattr
    /// disables both) unless forced.
    func refuse(_ scan: OverlayScan) throws(VirtFSError) {
        guard targetDialect(scan) == .user, !options.force else { return }
        for key in OverlayKey.disabledByUserxattr.sorted() {
            guard let n = scan.keys[key], n > 0 else { continue }
            throw .refused("convert", path: scan.keyPaths[key]?.first ?? [],
                "uses overlay.\(key) (\(n) entr\(n == 1 ? "y" : "ies")), which a userxattr mount disables: the user dialect would show a different tree (--force converts anyway)")
        }
    }

    // MARK: the walk

    struct DirectoryState {
        let entry: OverlayEntry
        var children: [OverlayEntry] = []
        var temporaries: [HostEntry] = []
    }

    /// Converts the layer at `root` (in place, or only planned when `dryRun`). Throws, before
    /// any change, the refusals. Per-entry failures are events.
    public func run(_ root: Walker.Location, dryRun: Bool, event: (Event) -> Void) throws(VirtFSError) -> Summary {
        let scan = OverlayScan.scan(root, model: options.model, oneFileSystem: options.oneFileSystem)
        try refuse(scan)
        var summary = Summary()
        let target = targetDialect(scan)
        func emit(_ e: Event) {
            switch e {
            case .change(let c): summary.changes[c.kind, default: 0] += 1
            case .warning: summary.warnings += 1
            case .failed: summary.failures += 1
            case .stale: summary.stale += 1
            }
            event(e)
        }
        // File handles in the layer go stale with a copy or a change of dialect.
        if options.copied || target != (scan.dominantDialect ?? target) {
            for h in scan.handles { emit(.stale(path: h.path, attribute: h.name)) }
        }
        var walkOptions = Walker.Options(recursive: true, oneFileSystem: options.oneFileSystem, model: options.model)
        // Stray metadata files are virtfs-fsck's business; the temporaries among them are removed here.
        walkOptions.auditStorage = false
        Walker(options: walkOptions).walk(root, visit: { (entry, parent: inout DirectoryState?) -> DirectoryState? in
            if TemporaryName.matches(entry.name) {
                parent?.temporaries.append(entry)
                return nil
            }
            do throws(VirtFSError) {
                let o = try OverlayEntry(entry, model: options.model)
                summary.entries += 1
                parent?.children.append(o)
                return entry.stat.fileType == .directory ? DirectoryState(entry: o) : nil
            } catch {
                emit(.failed(error))
                return nil
            }
        }, leave: { directory, state in
            convertDirectory(state, context: directory, target: target, dryRun: dryRun, emit: emit)
        }, failure: { emit(.failed($0)) })
        return summary
    }

    // MARK: one directory

    func convertDirectory(_ state: DirectoryState, context: DirectoryContext, target: OverlayDialect, dryRun: Bool,
                          emit: (Event) -> Void) {
        let dir = state.entry
        /// A change done (or, in a dry run, only planned) and reported; a failure is reported instead.
        func change(_ kind: Change.Kind, _ path: [UInt8], _ from: String, _ to: String, _ body: () throws(VirtFSError) -> Void) {
            do throws(VirtFSError) {
                if !dryRun { try body() }
                emit(.change(Change(kind: kind, path: path, from: from, to: to)))
            } catch { emit(.failed(error.at(path))) }
        }
        let dot = [UInt8(ascii: ".")]
        /// Sets overlay key `key` of the directory itself, in the target dialect.
        func mark(_ kind: Change.Kind, _ key: String, _ value: String, from: String) {
            change(kind, dir.entry.path, from, target.name(key) + "=" + value) { () throws(VirtFSError) in
                try Sys.setXattr(context.fd, dot, raw: Array(target.name(key).utf8), Array(value.utf8))
            }
        }
        if !dryRun {
            // Half-built by an interrupted run, never renamed into place.
            for t in state.temporaries { codec.discardTemporary(t) }
            // A metadata file renamed into place before its data (or left before either).
            codec.discardTemporaries(in: context)
        }
        let dirView = dir.view
        var recreated = Set<[UInt8]>()
        var droppedFromChild: [[UInt8]: Set<[UInt8]>] = [:]
        var removed = Set<[UInt8]>()
        func remove(_ m: OverlayEntry, _ from: String, _ to: String) {
            change(.removed, m.entry.path, from, to) { () throws(VirtFSError) in
                try codec.removeNameMetadata(of: m.entry)
                try Sys.unlink(m.entry.directory.fd, m.entry.name)
            }
            removed.insert(m.entry.name)
        }

        // Whiteouts, grouped by the name they delete, in the order the names first appear.
        let whiteouts = state.children.filter { $0.whiteout != nil }
        let groups = Dictionary(grouping: whiteouts) { $0.whiteout!.name }
        var seen = Set<[UInt8]>()
        let order = whiteouts.map { $0.whiteout!.name }.filter { seen.insert($0).inserted }
        let plainNames = Set(state.children.filter { $0.whiteout == nil && !$0.isOpaqueMarker }.map(\.entry.name))
        let marker = state.children.last { $0.isOpaqueMarker }
        let opaqueValue = (try? dir.value(OverlayKey.opaque)) ?? nil
        let isOpaque = opaqueValue == [UInt8(ascii: "y")] || marker != nil
        var finalForms: [WhiteoutForm] = []
        for name in order {
            let members = groups[name]!
            if plainNames.contains(name), members.contains(where: { $0.whiteout?.form == .oci }) {
                emit(.failed(.refused("convert", path: Bytes.join(context.path, name),
                    "both .wh.\(String(decoding: name, as: UTF8.self)) and the name itself are in the layer (an OCI layer replacing a lower entry); left as is")))
                continue
            }
            guard let form = targetForm else {
                finalForms += members.compactMap { $0.whiteout?.form }
                continue
            }
            if isOpaque && form == .xattr {
                // An xattr whiteout is only one in a directory marked `x`, not in an opaque one,
                // where it would show as an empty file; it hides nothing there anyway.
                for m in members { remove(m, "whiteout (\(m.whiteout!.form.rawValue)) in an opaque directory", "nothing (redundant)") }
                continue
            }
            finalForms.append(form)
            let keep = members.first { $0.whiteout!.form == form }
            let newName = form == .oci ? WhiteoutForm.ociPrefix + name : name
            if keep == nil {
                change(.whiteout, Bytes.join(context.path, newName), members[0].whiteout!.form.rawValue, form.rawValue) { () throws(VirtFSError) in
                    // The mapped form is the model's own device; the other forms are empty files.
                    let v = members[0].view, device = form == .char || form == .mapped
                    try build(form, GuestAttributes(type: device ? .characterDevice : .regular, permissions: v.attributes.permissions, uid: v.uid, gid: v.gid),
                              atime: v.host.atime, mtime: v.host.mtime, named: newName, in: context, target: target)
                }
                recreated.insert(newName)
            } else if let keep, form != .xattr {
                // An interrupted run may have left the old form's marker on the kept one.
                for x in keep.overlay where x.key == OverlayKey.whiteout {
                    change(.xattr, keep.entry.path, String(decoding: x.name, as: UTF8.self), "removed") { () throws(VirtFSError) in
                        try Sys.removeXattr(keep.entry.directory.fd, keep.entry.name, raw: x.name)
                    }
                    droppedFromChild[keep.entry.name, default: []].insert(x.name)
                }
            }
            for m in members where m.entry.name != keep?.entry.name ?? newName { remove(m, "whiteout (\(m.whiteout!.form.rawValue))", "replaced") }
        }
        let hasWhiteouts = !finalForms.isEmpty

        // Opaque markers follow the whiteout form.
        var dropped = Set<[UInt8]>()
        let opaqueXattrs = dir.overlay.filter { $0.key == OverlayKey.opaque }
        func dropOpaqueXattrs() {
            for x in opaqueXattrs {
                change(.opaque, dir.entry.path, "\(String(decoding: x.name, as: UTF8.self))=\(opaqueValue.map { String(decoding: $0, as: UTF8.self) } ?? "")", "removed") { () throws(VirtFSError) in
                    try Sys.removeXattr(context.fd, dot, raw: x.name)
                }
                dropped.insert(x.name)
            }
        }
        if let form = targetForm {
            if form == .oci {
                if isOpaque && marker == nil {
                    change(.opaque, Bytes.join(context.path, WhiteoutForm.ociOpaqueMarker), "overlay.opaque=y", ".wh..wh..opq") { () throws(VirtFSError) in
                        // With its directory's permissions, owner and mtime (what image tools write).
                        try build(.oci, GuestAttributes(type: .regular, permissions: dirView.attributes.permissions & 0o777, uid: dirView.uid, gid: dirView.gid),
                                  atime: dirView.host.mtime, mtime: dirView.host.mtime, named: WhiteoutForm.ociOpaqueMarker, in: context, target: target)
                    }
                }
                dropOpaqueXattrs()
            } else if isOpaque {
                if !opaqueXattrs.contains(where: { $0.dialect == target }) || opaqueValue != [UInt8(ascii: "y")] {
                    mark(.opaque, OverlayKey.opaque, "y", from: marker != nil ? ".wh..wh..opq" : "overlay.opaque")
                }
                if let marker {
                    let mv = marker.view
                    if mv.attributes.permissions != dirView.attributes.permissions & 0o777 || mv.uid != dirView.uid || mv.gid != dirView.gid || mv.host.mtime.seconds != dirView.host.mtime.seconds {
                        emit(.warning(.refused("convert", path: marker.entry.path,
                            "its owner, mode or mtime differ from its directory's; an opaque xattr keeps none of them (a marker made again copies the directory's)")))
                    }
                    remove(marker, ".wh..wh..opq", target.name(OverlayKey.opaque) + "=y")
                }
            } else if form == .xattr && hasWhiteouts {
                if opaqueValue != [UInt8(ascii: "x")] || !opaqueXattrs.contains(where: { $0.dialect == target }) {
                    mark(.opaque, OverlayKey.opaque, "x", from: "none")
                }
            } else if opaqueValue == [UInt8(ascii: "x")] {
                dropOpaqueXattrs()
            }
        }

        // A 9p guest reads d_type DT_UNKNOWN: make overlayfs look up every entry here.
        if target == .user && finalForms.contains(where: { $0 == .char || $0 == .mapped })
            && !dir.overlay.contains(where: { $0.key == OverlayKey.impure }) {
            mark(.impure, OverlayKey.impure, "y", from: "none")
        }

        // Names of the xattrs of what is left: the children that are not directories (those
        // were done when they were left), and the directory itself.
        for child in state.children where child.entry.stat.fileType != .directory {
            if recreated.contains(child.entry.name) || removed.contains(child.entry.name) { continue }
            renameXattrs(of: child, dir: child.entry.directory, name: child.entry.name, target: target, dryRun: dryRun,
                         skip: droppedFromChild[child.entry.name] ?? [], emit: emit)
        }
        renameXattrs(of: dir, dir: context, name: dot, target: target, dryRun: dryRun, skip: dropped, emit: emit)
        do throws(VirtFSError) {
            if !dryRun { try Sys.setTimes(context.fd, dot, atime: dir.entry.stat.atime, mtime: dir.entry.stat.mtime) }
        } catch { emit(.failed(error.at(dir.entry.path))) }
    }

    // MARK: xattr names

    /// The name `name` gets, or nil to leave it.
    func newName(_ name: [UInt8], target: OverlayDialect) -> XattrMap.Mapped? {
        let text = String(decoding: name, as: UTF8.self)
        if SecurityModel.mappedXattr.codec.holdsMetadata(xattr: name) || text.hasPrefix("system.") { return nil }
        if let (dialect, key) = OverlayDialect.parse(name), options.dialect != nil || options.xattrMap == nil {
            guard options.dialect != nil, dialect != target else { return nil }
            return .name(target.prefix + String(decoding: key, as: UTF8.self))
        }
        guard let map = options.xattrMap else { return nil }
        let mapped = map.map(text, toServer: options.xattrMapToServer)
        if case .name(let n) = mapped, n == text { return nil }
        return mapped
    }

    func renameXattrs(of o: OverlayEntry, dir: DirectoryContext, name: [UInt8], target: OverlayDialect, dryRun: Bool,
                      skip: Set<[UInt8]> = [], emit: (Event) -> Void) {
        let path = o.entry.path
        for old in o.xattrNames where !skip.contains(old) {
            guard let mapped = newName(old, target: target) else { continue }
            let oldText = Bytes.xattrName(old)
            guard case .name(let new) = mapped else {
                if case .refused(let why) = mapped {
                    emit(.warning(.refused("xattrmap", path: path, "\(oldText) left as is: \(why)")))
                }
                continue
            }
            do throws(VirtFSError) {
                guard let value = try Sys.getXattr(dir.fd, name, raw: old) else { continue }
                if !dryRun {
                    if let existing = try Sys.getXattr(dir.fd, name, raw: Array(new.utf8)) {
                        guard existing == value else {
                            throw VirtFSError.refused("rename", path: path, "both \(oldText) and \(new) are set, to different values; left as is")
                        }
                    } else {
                        do {
                            try Sys.setXattr(dir.fd, name, raw: Array(new.utf8), value)
                        } catch {
                            guard error.errno == EPERM && new.hasPrefix("user.") && o.entry.stat.fileType != .regular && o.entry.stat.fileType != .directory else { throw error }
                            // Linux keeps no user.* xattrs on symlinks and device nodes; a
                            // userxattr overlay ignores that failure too.
                            emit(.warning(.refused("rename", path: path, "\(oldText) dropped: Linux keeps no user.* xattrs on a \(o.entry.stat.fileType?.keyword ?? "special file")")))
                        }
                    }
                    try Sys.removeXattr(dir.fd, name, raw: old)
                }
                emit(.change(Change(kind: .xattr, path: path, from: oldText, to: new)))
            } catch {
                emit(.failed(error.at(path)))
            }
        }
    }

    // MARK: building whiteouts and markers

    /// Where new host objects go in a mapped model: the asked owner, else the directory's.
    func placement(in context: DirectoryContext) -> HostPlacement {
        var p = options.placement
        if p.owner == nil, options.model.isMapped, let st = try? Sys.stat(fd: context.fd) { p.owner = (st.uid, st.gid) }
        return p
    }

    /// Builds `newName` (a whiteout in `form`, or with `.oci` and no type, an opaque marker) with
    /// these owner, permissions and times, under a temporary name first, then renamed into place.
    /// In mapped-file the data and the metadata file move in two steps, ordered so that the
    /// state between them still reads as a whiteout (a re-run then finishes it): a new name gets
    /// its metadata first (a metadata file without data is rewritten by the re-run); an existing
    /// name is replaced data first when the new data is a whiteout by itself (a real device, or
    /// a file with overlay.whiteout), else metadata first (the old data keeps being a whiteout
    /// under the new metadata). A real device carries no metadata: the old object's goes with
    /// the commit.
    func build(_ form: WhiteoutForm, _ a: GuestAttributes, atime: Timestamp, mtime: Timestamp, named newName: [UInt8],
               in context: DirectoryContext, target: OverlayDialect) throws(VirtFSError) {
        let temporary = TemporaryName.current
        codec.discardTemporary(temporary, in: context)
        // A char whiteout is a real 0/0 device whatever the model.
        let storage: any ModelCodec = form == .char ? HostInodeCodec(model: .passthrough) : codec
        try storage.create(a, named: temporary, in: context, content: .empty, placement: placement(in: context))
        if form == .xattr {
            try Sys.setXattr(context.fd, temporary, raw: Array(target.name(OverlayKey.whiteout).utf8), [])
        }
        try Sys.setTimes(context.fd, temporary, atime: atime, mtime: mtime)
        let replacing = (try? Sys.stat(context.fd, newName)) != nil
        try codec.commitTemporary(temporary, as: newName, in: context, dataFirst: replacing && (form == .char || form == .xattr))
    }
}
