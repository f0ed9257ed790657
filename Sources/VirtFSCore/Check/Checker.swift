import Glibc

/// One problem virtfs-fsck found: what is wrong, what the guest experiences, and the repair.
public struct Finding: Sendable {
    public enum Action: Sendable {
        /// Write the entry's metadata anew from this view (canonical bytes, QEMU's layout).
        case rewriteMetadata(GuestAttributes)
        /// Rewrite with the owner of the guest's parent directory (`--adopt-from-parent`).
        case adoptFromParent(GuestAttributes)
        /// Remove a metadata object (file, symlink or empty directory) that QEMU misreads.
        case removeMetadataObject
        /// Replace a host symlink, fifo, socket or device node by the mapped form QEMU makes.
        case replaceWithMapped(GuestAttributes)
        /// Hard-link this entry's metadata file to the one of the entry at this path.
        case relinkMetadata(source: [[UInt8]])
        /// Give the host object to the QEMU user and add these owner permission bits, first
        /// writing the view as metadata when host fields show through it (`pin`), so that what
        /// the guest sees does not change with the host owner.
        case hostAccess(uid: UInt32, gid: UInt32, addBits: UInt32, pin: GuestAttributes?)
        /// Remove a temporary file an interrupted run left.
        case removeEntry
    }

    public struct Repair: Sendable {
        public var summary: String
        /// Safe repairs (`-p`) never change what the guest sees.
        public var safe: Bool
        public var action: Action
    }

    public var check: Check
    public var severity: Check.Severity { check.severity }
    /// The path as shown to the user, and its components below the export root.
    public var path: [UInt8]
    public var components: [[UInt8]]
    public var problem: String
    public var guestSees: String { check.guestSees }
    public var repair: Repair?
}

/// Walks a tree in its model and reports every inconsistency a guest would trip over.
/// Checking only reads; repairs are applied afterwards, one finding at a time, each resolved
/// again from the export root, so a run interrupted anywhere can simply be run again.
public struct Checker {
    public enum Adoption: Sendable {
        case owner(uid: UInt32, gid: UInt32)
        case fromParent
    }

    public struct Options: Sendable {
        public var model: SecurityModel
        /// The host user and group QEMU runs as (mapped models); nil: the export root's owner.
        public var qemuUser: (uid: UInt32, gid: UInt32)?
        public var adoption: Adoption?
        public var oneFileSystem = false
        public var fileMode: UInt32 = 0o600
        public var directoryMode: UInt32 = 0o700
        /// Whether the user named the model. Repairs that rewrite host objects wholesale
        /// (`host-special`) are never made on a detected model.
        public var modelDeclared = true
        /// Which entries without metadata lost it (`metadata-lost`) rather than came from the
        /// host (`no-metadata`).
        public var lossRule = LossRule()
        /// Repair entries whose host inode has hard links outside the tree too.
        public var allowOutsideLinks = false
        /// Threads that stat and decode entries while checking (the findings' order stays the walk's).
        public var jobs = 1

        public init(model: SecurityModel) {
            self.model = model
        }
    }

    public let options: Options
    public let root: Walker.Location
    let codec: any ModelCodec
    let qemuUser: (uid: UInt32, gid: UInt32)
    /// Names of multiply-linked inodes in the tree: no repair changes an inode that has names
    /// outside it.
    let links: LinkCensus

    public init(root: Walker.Location, options: Options) throws(VirtFSError) {
        self.root = root
        self.options = options
        links = LinkCensus(root: root, allowOutside: options.allowOutsideLinks)
        codec = options.model.codec(lenient: true)
        let rootStat = try root.entry().stat
        qemuUser = options.qemuUser ?? (rootStat.uid, rootStat.gid)
    }

    var placement: HostPlacement {
        HostPlacement(fileMode: options.fileMode, directoryMode: options.directoryMode,
                      owner: geteuid() == 0 ? qemuUser : nil, links: links)
    }

    // MARK: checking

    /// Reports every finding, in walk order.
    public func check(_ report: (Finding) -> Void) {
        var census: TreeCensus?
        check(report, census: &census)
    }

    /// Reports every finding, in walk order, and counts the tree into `census` (when given) on
    /// the same walk, by `options.lossRule`: one walk where a census taken first would be a second.
    public func check(_ report: (Finding) -> Void, census: inout TreeCensus?) {
        let model = options.model
        var walkOptions = Walker.Options(recursive: true, oneFileSystem: options.oneFileSystem, model: model)
        // The model audits its own storage in each directory, once its entries are checked.
        walkOptions.auditStorage = false
        // Hard links whose metadata has been seen: data identity -> (metadata identity, path).
        var linked: LinkedNames = [:]
        let codec = codec
        Walker(options: walkOptions).walk(root, jobs: options.jobs, transform: { entry in
            // Nothing changes the tree during the walk (repairs wait for its end): the census
            // reuses what checking the entry read (its xattr names, its metadata file's stat).
            // No check or repair uses a stored symlink's target (repairs rewrite metadata, never
            // the data that holds it): it is not read.
            var entry = entry.remembering()
            entry.readsStoredSymlinkTarget = false
            return (entry, Result { () throws(VirtFSError) in try codec.decode(entry) })
        }, visit: { decoded in
            checkEntry(decoded.0, decoded: decoded.1, linked: &linked, report: report)
            census?.count(decoded.0, root: root, rule: options.lossRule)
        }, leave: { directory in
            codec.audit(directory) { report(finding(for: $0)) }
        }, failure: { error in
            report(finding(for: error))
        })
    }

    func finding(for error: VirtFSError) -> Finding {
        let check = Check(error)
        var f = Finding(check: check, path: error.path, components: Bytes.components(error.path, below: root.path), problem: error.detail)
        if check == .orphanMetadata || check == .reservedMetadata {
            f.repair = .init(summary: "remove the stale metadata file", safe: true, action: .removeMetadataObject)
        }
        return f
    }

    /// What a walk of the check keeps per hard-linked inode: the first name's metadata identity and components.
    typealias LinkedNames = [FileIdentity: (metadata: FileIdentity?, components: [[UInt8]])]
    typealias Found = (Check, String, Finding.Repair?) -> Void

    /// Every check of one entry, in the order its findings are reported.
    func checkEntry(_ entry: HostEntry, decoded: Result<GuestView, VirtFSError>, linked: inout LinkedNames,
                    report reportAll: (Finding) -> Void) {
        // Only a finding or a hard link needs the path's components: split once, when asked.
        lazy var parts = entry.isExportRoot ? [] : Bytes.components(entry.path, below: root.path)
        // No repair of this entry may change its inode: only removing a name stays possible.
        func report(_ f: Finding) {
            reportAll(withoutOutsideRepairs(f, entry.stat))
        }
        func found(_ check: Check, _ problem: String, _ repair: Finding.Repair?) {
            report(Finding(check: check, path: entry.path, components: parts, problem: problem, repair: repair))
        }
        let outside = links.namesOutside(entry.stat)
        if outside > 0 {
            found(.outsideLink, LinkCensus.explanation(entry.stat, outside: outside, allowed: options.allowOutsideLinks), nil)
        }
        if checkName(entry, found: found) { return }
        let view: GuestView
        do { view = try decoded.get() } catch { return report(finding(for: error)) }
        let target = RepairTarget(view, host: entry.stat, codec: codec)
        let rewrite = checkDiagnostics(view, target, entry: entry, parts: parts, report: report)
        if options.model.isMapped {
            checkMappedForm(view, target, entry: entry, rewritten: rewrite != nil, parts: parts, found: found)
            checkAccess(entry.stat, parts: parts, path: entry.path, pin: target.showsHost ? target.merged : nil,
                        keepsView: target.keepsView, report: report)
            if codec.keepsMetadataByName {
                // A metadata file with a name outside the tree gets one of its own, by rename: the
                // outside file is not written, and the view does not change when it is exact.
                let ownFile = Finding.Repair(summary: "give the entry a metadata file of its own (a rename; the outside file is left as it is)",
                                             safe: target.exact, action: .rewriteMetadata(target.merged))
                checkMetadataFile(entry, parts: parts, linked: &linked, ownFile: ownFile, report: report, found: found)
            }
        }
        checkHostTrust(view.attributes, found: found)
    }

    /// A temporary an interrupted run left, or another mapped model's storage: the name alone
    /// is the finding (true), and the entry is not read as an entry.
    func checkName(_ entry: HostEntry, found: Found) -> Bool {
        let model = options.model
        if TemporaryName.matches(entry.name) {
            // Not -p: the guest sees the file until it is removed.
            found(.strayTemporary, "temporary file of an interrupted virtfs-tools run",
                  .init(summary: "remove it", safe: false, action: .removeEntry))
        } else if model.isMapped, let other = SecurityModel.storing(name: entry.name), other != model {
            found(.mixedModels, "\(other.rawValue) metadata in a \(model.rawValue) tree", nil)
        } else {
            return false
        }
        return true
    }

    /// One entry, one outcome: every rewrite of this entry (and the view a host-access repair
    /// pins) writes the same attributes, with every correction applied, so that no repair
    /// undoes an earlier one and -y reaches a fixpoint in one pass. A rewrite is safe (-p)
    /// only when what it writes is exactly the view the guest has now.
    struct RepairTarget {
        var merged: GuestAttributes
        var exact: Bool
        /// A host symlink, device, fifo or socket, which holds no metadata of its own.
        var hostSpecial: Bool
        /// Host fields show through the view: a host-access repair pins it first.
        var showsHost: Bool
        /// A host-access repair leaves the guest's view as it is.
        var keepsView: Bool

        init(_ view: GuestView, host: HostStat, codec: any ModelCodec) {
            merged = view.attributes
            let hostType = host.fileType
            hostSpecial = hostType.map { $0 != .regular && $0 != .directory } ?? false
            // The host object is what QEMU can serve: its type wins (a host special is replaced
            // by the mapped object of its own type).
            if view.diagnostics.contains(where: { Check($0) == .modeType }), let hostType,
               hostSpecial ? merged.type != hostType : (hostType == .directory) != (merged.type == .directory) {
                merged.type = hostType
                if hostType != .symlink { merged.symlinkTarget = nil }
            }
            exact = merged == view.attributes && codec.keeps(merged, host: host) && view.diagnostics.allSatisfy(Self.safe)
            let p = view.provenance
            showsHost = p.uid == .host || p.gid == .host || p.mode == .host
            keepsView = (!showsHost || exact) && !codec.hostShowsThrough(view.attributes, host: host)
        }

        /// A rewrite keeps what the guest sees unless the value it replaces reads as undefined
        /// bytes, or the type or ACL it corrects.
        static func safe(_ d: VirtFSError) -> Bool {
            switch d.finding {
            case .valueUndefined?, .modeWithoutType?, .typeContradictsHost?, .aclRejected?: return false
            default: return true
            }
        }
    }

    /// A finding per diagnostic the codec reported while decoding, and the rewrite that repairs
    /// the entry's metadata, if one does.
    func checkDiagnostics(_ view: GuestView, _ target: RepairTarget, entry: HostEntry, parts: @autoclosure () -> [[UInt8]],
                          report: (Finding) -> Void) -> Finding.Repair? {
        var rewrite: Finding.Repair?
        for d in view.diagnostics {
            let check = Check(d)
            let repair: Finding.Repair? = switch check {
            // Metadata cannot be written on a host special (no user xattrs on Linux); its
            // replacement carries the repaired metadata, made once for all its findings.
            case .xattrLength, .metadataSyntax, .modeType, .badACL:
                target.hostSpecial ? .init(summary: "replace it by the mapped \(target.merged.type.keyword) QEMU would have made", safe: false, action: .replaceWithMapped(target.merged))
                    : .init(summary: "rewrite the metadata as QEMU writes it", safe: RepairTarget.safe(d) && target.exact, action: .rewriteMetadata(target.merged))
            case .metadataObject:
                .init(summary: "remove what stands in place of the metadata file", safe: false, action: .removeMetadataObject)
            default: nil
            }
            if check != .metadataObject, let repair { rewrite = repair }
            // The object a metadata-object repair removes is the metadata file, not the entry.
            report(Finding(check: check, path: entry.path, components: check == .metadataObject ? metadataComponents(of: entry, parts: parts()) : parts(),
                           problem: d.detail, repair: repair))
        }
        return rewrite
    }

    /// Whether a mapped entry is stored as the model stores it: the Linux layout, no host
    /// special, and metadata (lost, or never given when the host added the entry).
    func checkMappedForm(_ view: GuestView, _ target: RepairTarget, entry: HostEntry, rewritten: Bool,
                         parts: @autoclosure () -> [[UInt8]], found: Found) {
        let model = options.model
        let p = view.provenance
        let hostType = entry.stat.fileType
        if p.mode == .xattrMacOS || p.rdev == .xattrMacOS {
            found(.macosLayout, "\(p.mode == .xattrMacOS ? VirtfsXattr.mode : VirtfsXattr.rdev) in the macOS layout",
                  .init(summary: "rewrite in the Linux layout", safe: false, action: .rewriteMetadata(target.merged)))
        }
        if target.hostSpecial, let hostType {
            var attributes = target.merged
            if view.hostFallback, case .owner(let uid, let gid)? = options.adoption {
                attributes = target.merged.changingOwnerOnly(uid: uid, gid: gid)
            }
            // Replacing host objects on a guessed model could turn a whole passthrough tree's
            // symlinks into files.
            found(.hostSpecial, "host \(hostType.keyword) in a \(model.rawValue) export"
                  + (options.modelDeclared ? "" : " (the model was detected: repairing it needs --model \(model.rawValue))"),
                  options.modelDeclared ? .init(summary: "replace it by the mapped \(hostType.keyword) QEMU would have made", safe: false,
                                                action: .replaceWithMapped(attributes)) : nil)
        } else if view.hostFallback && !rewritten && view.diagnostics.isEmpty,
                  let reason = lossReason(entry, parts: parts()) {
            found(.metadataLost, "no VirtFS metadata, lost (\(reason)): the guest sees a host \(hostType?.keyword ?? "object") owned by \(view.uid):\(view.gid) with mode 0\(String(view.attributes.permissions, radix: 8))", nil)
        } else if view.hostFallback && !rewritten {
            let repair: Finding.Repair? = switch options.adoption {
            case .owner(let uid, let gid)?:
                .init(summary: "give it metadata owned by \(uid):\(gid)", safe: true,
                      action: .rewriteMetadata(view.attributes.changingOwnerOnly(uid: uid, gid: gid)))
            case .fromParent? where !entry.isExportRoot:
                .init(summary: "give it metadata owned like its parent directory", safe: true, action: .adoptFromParent(view.attributes))
            default: nil
            }
            found(.noMetadata, "no VirtFS metadata: the guest sees host owner \(view.uid):\(view.gid) and mode 0\(String(view.attributes.permissions, radix: 8))", repair)
        }
    }

    /// What the host trusts the guest with: another model's metadata the guest can write, and
    /// (outside the mapped models) set-id root files and devices served as the host's own.
    func checkHostTrust(_ a: GuestAttributes, found: Found) {
        let model = options.model
        // (A mapped-xattr guest sees none of them.)
        if let forged = SecurityModel.mappedCodecs.first(where: { codec in a.xattrs.contains { codec.holdsMetadata(xattr: $0.name) } }) {
            found(.untrustedXattr, "carries \(forged.storageDescription), which the guest can write in \(model.rawValue)", nil)
        }
        guard !model.isMapped else { return }
        if a.type == .regular && ((a.permissions & 0o4000 != 0 && a.uid == 0) || (a.permissions & 0o2000 != 0 && a.gid == 0)) {
            found(.privileged, "set-id root file served as a real host file", nil)
        } else if a.type.hasDeviceNumber && a.rdev != .zero {
            found(.privileged, "device node \(a.rdev) served as a real host device", nil)
        }
    }

    /// Why an entry without metadata lost it, or nil when it may have been added on the host.
    func lossReason(_ entry: HostEntry, parts: [[UInt8]]) -> String? {
        guard !entry.isExportRoot || options.lossRule.all else { return nil }
        let shape = entry.isExportRoot ? nil : MappedShape.of(entry, components: parts, root: root.directory)
        guard options.lossRule.lost(entry, shape: shape) else { return nil }
        switch shape {
        case .symlink(let target)?: return "its data is the symlink target \(Bytes.shellEscaped(target))"
        case .device?: return "an empty file in dev, the stored form of a device"
        case nil where options.lossRule.all: return "no entry of the tree carries any"
        case nil: return "host owner and mode are those of the tree's own entries, not of a host-added file"
        }
    }

    /// The finding without its repair when that repair would change an inode with names
    /// outside the tree (and the user did not allow it).
    func withoutOutsideRepairs(_ f: Finding, _ st: HostStat) -> Finding {
        guard !options.allowOutsideLinks, links.namesOutside(st) > 0, let repair = f.repair else { return f }
        switch repair.action {
        case .removeMetadataObject, .removeEntry, .relinkMetadata, .replaceWithMapped: return f
        default:
            var stripped = f
            stripped.repair = nil
            return stripped
        }
    }

    /// Where an entry's metadata file is, as components below the root.
    func metadataComponents(of entry: HostEntry, parts: [[UInt8]]) -> [[UInt8]] {
        Array(parts.dropLast()) + (codec.metadataFile(of: entry) ?? [])
    }

    /// Whether the QEMU user can use a host object: read and write files, and also traverse
    /// directories, judged by owner, group and other bits as the kernel would.
    func checkAccess(_ st: HostStat, parts: [[UInt8]], path: [UInt8], pin: GuestAttributes? = nil, keepsView: Bool = true,
                     report: (Finding) -> Void) {
        guard qemuUser.uid != 0, let type = st.fileType, type == .regular || type == .directory else { return }
        let need: UInt32 = type == .directory ? 7 : 6
        let shift: UInt32 = st.uid == qemuUser.uid ? 6 : (st.gid == qemuUser.gid ? 3 : 0)
        guard (st.permissions >> shift) & need != need else { return }
        report(Finding(check: .qemuAccess, path: path, components: parts,
                       problem: "host owner \(st.uid):\(st.gid) mode 0\(String(st.permissions, radix: 8)): uid \(qemuUser.uid) cannot \(type == .directory ? "list and enter" : "read and write") it",
                       repair: .init(summary: "give it to \(qemuUser.uid):\(qemuUser.gid) with owner bits \(type == .directory ? "rwx" : "rw-")",
                                     safe: keepsView,
                                     action: .hostAccess(uid: qemuUser.uid, gid: qemuUser.gid, addBits: need << 6, pin: pin))))
    }

    func checkMetadataFile(_ entry: HostEntry, parts: [[UInt8]], linked: inout LinkedNames,
                           ownFile: Finding.Repair?, report: (Finding) -> Void, found: Found) {
        let metadata = codec.metadataStat(of: entry)
        if entry.stat.fileType == .directory, let (name, st) = codec.storageStat(inside: entry) {
            checkAccess(st, parts: parts + [name], path: Bytes.join(entry.path, name), report: report)
        }
        if let metadata, metadata.fileType == .regular {
            let shown = (codec.metadataFile(of: entry) ?? []).reduce(entry.isExportRoot ? entry.path : entry.directory.path) { Bytes.join($0, $1) }
            let outside = links.namesOutside(metadata)
            if outside > 0 {
                // The repair acts on the entry (its metadata is replaced), so it names the entry.
                report(Finding(check: .outsideLink, path: shown, components: parts,
                               problem: "metadata file with \(metadata.nlink) names, \(outside) of them outside the tree: QEMU rewrites it in place, so the guest's chown and chmod would reach that file",
                               repair: ownFile))
            }
            checkAccess(metadata, parts: metadataComponents(of: entry, parts: parts), path: shown) { report(withoutOutsideRepairs($0, metadata)) }
        }
        guard entry.stat.nlink > 1, entry.stat.fileType != .directory, !entry.isExportRoot else { return }
        if let first = linked[entry.stat.identity] {
            if first.metadata != metadata?.identity {
                found(.metadataLinks, "hard link of \(Bytes.shellEscaped(first.components.reduce([]) { Bytes.join($0, $1) })) with a metadata file of its own",
                      .init(summary: "hard-link its metadata to the first name's, as QEMU's link does", safe: false,
                            action: .relinkMetadata(source: first.components)))
            }
        } else {
            linked[entry.stat.identity] = (metadata?.identity, parts)
        }
    }


    // MARK: repairing

    /// Applies one finding's repair. Each repair is complete on its own and leaves every entry
    /// readable at every step (temporary names, then rename), so an interrupted run can be run
    /// again.
    public func repair(_ finding: Finding) throws(VirtFSError) {
        guard let repair = finding.repair else { return }
        let location = try Walker.inside(root, relative: finding.components, path: finding.path)
        switch repair.action {
        case .rewriteMetadata, .adoptFromParent, .hostAccess:
            // The tree may have changed since the check: ask again right before writing.
            try links.refuseOutside(Sys.stat(location.directory.fd, location.name), path: finding.path, operation: "st_nlink")
        default: break
        }
        switch repair.action {
        case .rewriteMetadata(let attributes):
            try rewrite(location, attributes)
        case .adoptFromParent(let attributes):
            let parent = try Walker.inside(root, relative: Array(finding.components.dropLast()), path: finding.path)
            let owner = try codec.decode(parent.entry()).attributes
            try rewrite(location, attributes.changingOwnerOnly(uid: owner.uid, gid: owner.gid))
        case .removeMetadataObject:
            let st = try Sys.stat(location.directory.fd, location.name)
            try Sys.unlink(location.directory.fd, location.name, directory: st.fileType == .directory)
        case .removeEntry:
            // With its metadata, which would be an orphan for the next run to find (one pass, one
            // fixpoint); a directory too (a mount's mkdir is built aside as one).
            try codec.remove(location.entry())
        case .hostAccess(let uid, let gid, let bits, let pin):
            if let pin { try rewrite(location, pin) }
            let st = try Sys.stat(location.directory.fd, location.name)
            if st.uid != uid || st.gid != gid {
                try Sys.chown(location.directory.fd, location.name, uid, gid)
            }
            try Sys.chmod(location.directory.fd, location.name, mode_t(st.permissions | bits))
        case .replaceWithMapped(let attributes):
            try replaceWithMapped(location, attributes)
        case .relinkMetadata(let source):
            try relinkMetadata(location, source: source)
        }
    }

    /// The mapped object is made under a temporary name, complete with its metadata, then
    /// renamed over the host object: the entry is the old or the new object, never neither.
    func replaceWithMapped(_ location: Walker.Location, _ attributes: GuestAttributes) throws(VirtFSError) {
        let temporary = TemporaryName.current
        let dir = location.directory
        // Several findings of one entry carry the same replacement: the first one makes it.
        let current = try Sys.stat(dir.fd, location.name)
        if current.fileType == .regular || current.fileType == .directory { return }
        codec.discardTemporary(temporary, in: dir)
        try codec.create(attributes, named: temporary, in: dir, content: .empty, placement: placement)
        try codec.commitTemporary(temporary, as: location.name, in: dir, dataFirst: false)
    }

    func hasMetadataFile(_ location: Walker.Location) -> Bool {
        (try? location.entry()).map(codec.hasMetadata) ?? false
    }

    /// Writes `attributes` as the entry's metadata; metadata the entry did not have before is
    /// then shared with its other names (`shareMetadata`).
    func rewrite(_ location: Walker.Location, _ attributes: GuestAttributes) throws(VirtFSError) {
        let had = hasMetadataFile(location)
        try codec.update(attributes, of: location.entry(), placement: placement)
        if !had { try shareMetadata(of: location) }
    }

    /// mapped-file: the metadata file a repair just created for one name of a multiply-linked
    /// inode is linked to the inode's other names in the tree that have none, as QEMU's link
    /// leaves them, so that no later pass finds hard links with metadata of their own.
    func shareMetadata(of location: Walker.Location) throws(VirtFSError) {
        guard codec.keepsMetadataByName, !location.isExportRoot else { return }
        let st = try Sys.stat(location.directory.fd, location.name)
        guard st.nlink > 1, st.fileType != .directory else { return }
        let here = try Sys.stat(fd: location.directory.fd).identity
        for parts in links.namesInside(st) {
            let other = try Walker.inside(root, relative: parts, path: [])
            if try Sys.stat(fd: other.directory.fd).identity == here && other.name == location.name { continue }
            guard let entry = try? other.entry(), entry.stat.identity == st.identity, !codec.hasMetadata(entry) else { continue }
            guard try codec.shareMetadata(of: location.name, in: location.directory, with: other.name, in: other.directory,
                                          placement: placement) else { break }
        }
        links.invalidate()
    }

    func relinkMetadata(_ location: Walker.Location, source: [[UInt8]]) throws(VirtFSError) {
        let sourceLocation = try Walker.inside(root, relative: source, path: [])
        // When the first name has no metadata file, the one this name has becomes both names'.
        let (from, to) = hasMetadataFile(sourceLocation) ? (sourceLocation, location) : (location, sourceLocation)
        guard hasMetadataFile(from) else { return }
        _ = try codec.shareMetadata(of: from.name, in: from.directory, with: to.name, in: to.directory, placement: placement)
        // This name now shares another inode: later rewrites must find it among that one's names.
        links.invalidate()
    }
}

extension GuestAttributes {
    /// The same view with another owner and nothing else changed (adopting a host file is not
    /// a guest chown: set-id bits stay).
    func changingOwnerOnly(uid: UInt32, gid: UInt32) -> GuestAttributes {
        var a = self
        a.uid = uid
        a.gid = gid
        return a
    }
}
