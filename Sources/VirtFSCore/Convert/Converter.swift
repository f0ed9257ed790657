import Glibc

/// Moves a tree between security models: decode each entry with the source model's codec,
/// encode the same guest view with the target's. Nothing else knows two models at once.
///
/// In place, each entry changes form in one atomic step (its commit point) and can always be
/// read in one form or the other; the form of an entry is told by its metadata:
///   - when mapped-file is involved, by the presence of its metadata file (written last when
///     converting to mapped-file, removed last when converting from it);
///   - else, when mapped-xattr is involved, by the presence of `user.virtfs.mode` (written
///     last, removed first);
///   - objects whose host type changes (symlinks, devices, fifos, sockets) are built complete
///     under a temporary name and renamed over the old one.
/// A state file in the export root (`.virtfs-convert-state`) records the conversion under way,
/// so a run interrupted anywhere is finished by running the same command again.
///
/// What belongs to the host inode rather than to a name (mapped-xattr's `user.virtfs.*`, the
/// host owner and mode QEMU's user needs, host ACLs) takes its final form only once every name
/// of the inode is in the target form (the walk counts names against the link count): until
/// then each remaining name still reads in its old form, so a run stopped between two names of
/// a hard link (kill, ENOSPC, EPERM) loses nothing.
public struct Converter {
    public struct Options: Sendable {
        public var from: SecurityModel
        public var to: SecurityModel
        public var placement = HostPlacement()
        public var allowDevices = false
        public var allowSetuid = false
        public var trustExistingXattrs = false
        public var oneFileSystem = false
        /// Threads the preflight reads and decodes on, and that convert in place (see `alone`);
        /// nothing found or done, and no event's order, depends on it.
        public var jobs = 1

        public init(from: SecurityModel, to: SecurityModel) {
            self.from = from
            self.to = to
        }
    }

    public struct Summary: Sendable {
        public var converted: [FileType: Int] = [:]
        public var alreadyDone = 0
        public var bytes: UInt64 = 0
        public var dropped = 0
        public var failures = 0

        public var total: Int { converted.values.reduce(0, +) }

        mutating func count(_ view: GuestView) {
            converted[view.type, default: 0] += 1
            if view.type == .regular { bytes += view.host.size }
        }

        /// Counts what an event reports (a dropped xattr is counted where it is dropped), then
        /// reports it.
        mutating func note(_ event: Event, _ report: (Event) -> Void) {
            switch event {
            case .converted(let view): count(view)
            case .failed: failures += 1
            case .planned, .dropped: break
            }
            report(event)
        }
    }

    public enum Event {
        case converted(GuestView)
        case planned(GuestView)
        case dropped(VirtFSError)
        case failed(VirtFSError)
    }

    public let options: Options
    let source: any ModelCodec
    let target: any ModelCodec

    public init(options: Options) {
        var options = options
        // Durability comes in batches (see `inPlace`'s flush), not a flush per metadata file.
        options.placement.syncEachFile = false
        options.placement.metadataFileInPlace = true
        self.options = options
        source = options.from.codec
        target = options.to.codec
    }

    var walkOptions: Walker.Options {
        var o = Walker.Options(recursive: true, oneFileSystem: options.oneFileSystem, model: options.from)
        o.hiddenStorage = [source, target]
        o.auditStorage = false
        return o
    }

    // MARK: reading an entry in whichever form it is in

    /// The model an entry is stored in right now, during a conversion between the two models:
    /// the one whose metadata it carries. Between the two mapped models, a metadata file wins
    /// (a name converted to mapped-file keeps the inode's xattrs until its last name is done).
    /// A metadata file this run writes is made under its name (`metadataFileInPlace`) and
    /// written in one call: empty, it was cut short before that call, and does not count.
    func form(of entry: HostEntry) -> SecurityModel {
        let first = source.keepsMetadataByName || !target.model.isMapped ? source : target
        guard first.model.isMapped else { return options.from }
        let written = first.model == options.to && first.keepsMetadataByName
            ? (first.metadataStat(of: entry)?.size ?? 0) > 0 : first.hasMetadata(entry)
        return written ? first.model : first.model == options.from ? options.to : options.from
    }

    /// The form an entry is in, and `decode` of it in that form. Where the source keeps its
    /// metadata by name, decoding as the source comes first: that finds the metadata file or
    /// finds none, which is what tells the form, so the form costs no lookup of its own.
    /// (Elsewhere the form is told by the xattr names, which decoding lists once for both.)
    func read(_ entry: HostEntry, _ decode: (SecurityModel) throws(VirtFSError) -> GuestView) -> (SecurityModel, Result<GuestView, VirtFSError>) {
        entry.remembering {
            let early = source.keepsMetadataByName ? Result { () throws(VirtFSError) in try decode(options.from) } : nil
            let current = form(of: entry)
            if current == options.from, let early { return (current, early) }
            return (current, Result { () throws(VirtFSError) in try decode(current) })
        }
    }

    /// The guest view to carry over: the source's, minus `user.virtfs.*` xattrs a guest could
    /// have forged where the target would make them authoritative, and the names of those it
    /// dropped. In place, once the state file is written, the forged ones are gone and any left
    /// are this conversion's own (written through another name of a hard link, or before an
    /// interruption): `ours` strips those as well, and they are not forged.
    func view(of entry: HostEntry, in model: SecurityModel, ours: Bool = false) throws(VirtFSError) -> (GuestView, forged: [[UInt8]]) {
        var view = try model.codec.decode(entry)
        // (A guest of the target's own model sees none of them.)
        let forged = view.attributes.xattrs.filter { target.holdsMetadata(xattr: $0.name) }.map(\.name)
        guard !forged.isEmpty && (ours || !options.trustExistingXattrs) else { return (view, []) }
        view.attributes.xattrs.removeAll { target.holdsMetadata(xattr: $0.name) }
        return (view, ours ? [] : forged)
    }

    static func droppedForged(_ path: [UInt8], _ names: [[UInt8]]) -> VirtFSError {
        VirtFSError.refused("convert", path: path,
            "dropped \(names.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ", ")): written where the guest could forge it (--trust-existing-xattrs keeps it as the metadata)").found(.metadataForgeable)
    }

    // MARK: checking before anything changes

    /// Walks the whole tree first and reports what cannot be converted as asked: entries the
    /// target cannot keep, guest-made devices and set-id root files without --allow-*, and
    /// steps that need root when not run as root. Returns false when the conversion must not
    /// start. Nothing is written.
    ///
    /// Also refused, whatever the target: a value the target model cannot hold (the codec says
    /// which), and, in place, a name virtfs-tools keeps for itself and an inode with names
    /// outside the tree (converting it would change a file outside the tree).
    ///
    /// Returns what the walk learned (for `inPlace`), or nil when the conversion must not start.
    /// What the preflight's walk learned that an in-place run would otherwise walk the whole
    /// tree again for before it starts: every directory's times, and the entries whose
    /// `user.virtfs.*` a fresh run to mapped-xattr drops as forged. Valid only while no one else
    /// changes the tree (the run holds its lock from before the preflight).
    public struct Survey {
        /// The entries the conversion will visit (a progress total).
        public internal(set) var entries = 0
        var times: [String: (Timestamp, Timestamp)] = [:]
        var forged: [[UInt8]] = []
        /// False when the in-place run must walk for itself: the preflight was not for a fresh
        /// in-place run, or met more forged entries than are worth keeping in memory.
        var complete = false
        static let forgedLimit = 4096

        public init() {}
    }

    /// The key of a directory's times in the state file: its path below the root, in hex.
    static func stateKey(_ path: [UInt8], root: Walker.Location) -> String {
        let parts = components(path, below: root)
        return parts.isEmpty ? "." : Bytes.hex(parts.joined(separator: [UInt8(ascii: "/")]).map { $0 })
    }

    /// The components of `path` below the export root `root`.
    static func components(_ path: [UInt8], below root: Walker.Location) -> [[UInt8]] {
        Bytes.components(Array(path.dropFirst(root.path.count)))
    }

    /// Whether the target's metadata, found in the source, is what a guest could have forged.
    var forgeable: Bool { target.metadataForgeable && options.from != options.to }
    var dropsForged: Bool { forgeable && !options.trustExistingXattrs }

    public func preflight(_ root: Walker.Location, inPlace: Bool = true, report: (VirtFSError) -> Void) -> Survey? {
        var ok = true
        var entries = 0
        let euid = geteuid()
        let myGroups = Sys.groups()
        let recorded = ConversionRecord.isRecorded(in: root.directory)
        let changesInodes = options.from.isMapped || options.to.isMapped
        // Inodes with several names: how many were met, and the first one's path.
        var names: [FileIdentity: (count: UInt64, nlink: UInt64, path: [UInt8])] = [:]
        if inPlace && !recorded, case .mixed(let refusal) = alreadyConverted(root) {
            report(refusal)
            return nil
        }
        var preflightWalk = walkOptions
        // Before a conversion to mapped-file starts, a name it reserves is the guest's data.
        // (Once the export root has its metadata file, which a conversion writes first, the
        // conversion to mapped-file has begun or is done.)
        let hidesTarget = inPlace && recorded || ((try? root.entry()).map(target.hasMetadata) ?? false)
        preflightWalk.hiddenStorage = hidesTarget ? [source, target] : [source]
        var survey = Survey()
        // (This walk hides mapped-file metadata only where the run's own walk does too: it sees
        // every directory that one sees, and perhaps a few more.)
        survey.complete = inPlace && !recorded
        // Reading only: each entry's form and decoding on `jobs` threads, the checks in walk order.
        Walker(options: preflightWalk).walk(root, jobs: options.jobs, transform: { entry in
            let (current, decoded) = read(entry) { model throws(VirtFSError) in try model.codec.decode(entry) }
            return (entry, current, decoded)
        }, visit: { (entry: HostEntry, current: SecurityModel, decoded: Result<GuestView, VirtFSError>) in
            entries += 1
            if survey.complete {
                // As the state's own walk would record them (see writeState).
                if entry.stat.fileType == .directory {
                    survey.times[Self.stateKey(entry.path, root: root)] = (entry.stat.atime, entry.stat.mtime)
                }
                if dropsForged, let names = try? entry.xattrNames(), names.contains(where: target.holdsMetadata(xattr:)) {
                    survey.forged.append(entry.path)
                    if survey.forged.count > Survey.forgedLimit { survey = Survey() }
                }
            }
            func refuse(_ why: String) {
                ok = false
                report(.refused("convert", path: entry.path, why))
            }
            if isStateFile(entry, root: root) { return }
            if TemporaryName.matches(entry.name) {
                // After an interruption these are the run's own leftovers, which it removes.
                if inPlace && !recorded {
                    refuse("the name is one virtfs-tools builds under and removes as a leftover: rename it first")
                }
                return
            }
            if !hidesTarget && target.holdsMetadata(entry.name) && source.model.isMapped && !source.hasMetadata(entry) {
                // No guest made it (a guest's object here carries its metadata): a metadata
                // directory left by an earlier conversion to mapped-file.
                return
            }
            if inPlace && changesInodes && entry.stat.fileType != .directory && entry.stat.nlink > 1 {
                names[entry.stat.identity, default: (0, entry.stat.nlink, entry.path)].count += 1
            }
            let view: GuestView
            switch decoded {
            case .success(let decoded): view = decoded
            case .failure(let error): return report(error)
            }
            let a = view.attributes
            if !(inPlace && current == options.to) {
                for why in target.cannotHold(a, name: entry.isExportRoot ? nil : entry.name) {
                    refuse("\(options.to.rawValue) cannot hold it: \(why)")
                }
            }
            if !options.to.isMapped {
                if a.type.hasDeviceNumber && a.rdev != .zero && !options.allowDevices {
                    refuse("device node \(a.rdev) in a tree a guest wrote: pass --allow-devices to create it on the host")
                }
                if a.type == .regular && ((a.permissions & 0o4000 != 0 && a.uid == 0) || (a.permissions & 0o2000 != 0 && a.gid == 0)) && !options.allowSetuid {
                    refuse("set-id root file in a tree a guest wrote: pass --allow-setuid to make it one on the host")
                }
                if euid != 0 {
                    if a.type.hasDeviceNumber { refuse("creating a device node needs root") }
                    if a.uid != euid { refuse("giving it to uid \(a.uid) needs root") }
                    if !myGroups.contains(a.gid) { refuse("giving it to gid \(a.gid) needs root") }
                }
            }
        }, failure: { report($0); ok = false })
        for (_, seen) in names.sorted(by: { $0.value.path.lexicographicallyPrecedes($1.value.path) }) where seen.count < seen.nlink {
            ok = false
            report(.refused("convert", path: seen.path,
                "hard link with \(seen.nlink - seen.count) of its \(seen.nlink) names outside the tree: converting it in place would change a file outside the tree (--output converts to a copy)"))
        }
        survey.entries = entries
        return ok ? survey : nil
    }

    /// The state file is the export root's own; a guest file of that name deeper down is data.
    func isStateFile(_ entry: HostEntry, root: Walker.Location) -> Bool {
        ConversionRecord.isStateFile(entry.name) && entry.directory === root.directory
    }

    // MARK: copying

    /// Writes the converted tree into `output`, an empty directory; the source is only read.
    /// Entries are decoded and made on `jobs` threads, each directory's copy by the thread that
    /// copies the directory and waited for by those that copy what is in it (which never run
    /// ahead of it: see `DirectoryCopies`); later names of an inode are linked to its first one
    /// in walk order, and every event comes in walk order.
    public func copy(_ root: Walker.Location, into output: Walker.Location, event: (Event) -> Void) -> Summary {
        var summary = Summary()
        var links: [FileIdentity: [[UInt8]]] = [:]
        let copies = DirectoryCopies()
        let flush = BackgroundFlush(output.directory.fd)
        /// Makes the copy of `entry` (a link to `first` when that is its inode's first name);
        /// returns the copy of a directory.
        func make(_ entry: HostEntry, _ view: GuestView, linking first: [[UInt8]]?) throws(VirtFSError) -> DirectoryContext? {
            if entry.isExportRoot {
                if options.to.isMapped {
                    // The output root is a host object QEMU's user must reach, like any
                    // directory the mapped models create.
                    if let owner = options.placement.owner { try Sys.chown(output.directory.fd, [UInt8(ascii: ".")], owner.uid, owner.gid) }
                    try Sys.chmod(output.directory.fd, [UInt8(ascii: ".")], mode_t(options.placement.directoryMode))
                }
                try target.update(view.attributes, of: output.entry(), placement: options.placement)
                return output.directory
            }
            guard let parent = copies.copy(of: entry.directory.path) else {
                throw VirtFSError.refused("convert", path: entry.path, "parent directory was not converted")
            }
            if let first {
                try target.link(Walker.inside(output, relative: first, path: []).entry(), as: entry.name, in: parent, placement: options.placement)
                return nil
            }
            try target.create(view.attributes, named: entry.name, in: parent,
                              content: view.type == .regular ? .copy(of: entry) : .empty, placement: options.placement)
            if view.type == .directory { return try parent.child(entry.name, path: Bytes.join(parent.path, entry.name)) }
            try Sys.setTimes(parent.fd, entry.name, atime: view.host.atime, mtime: view.host.mtime)
            return nil
        }
        /// A directory's key among the copies: the path of its directory as the walk lists it.
        func key(_ entry: HostEntry) -> [UInt8] { entry.isExportRoot ? entry.directory.path : entry.path }
        typealias Copied = (entry: HostEntry, view: Result<(GuestView, forged: [[UInt8]]), VirtFSError>, made: Result<Void, VirtFSError>?)
        Walker(options: walkOptions).walk(root, jobs: options.jobs, transform: { entry -> Copied in
            let view = Result { () throws(VirtFSError) in
                // Trusted user.virtfs.* values are the metadata: read such entries as mapped-xattr.
                let trusted = options.trustExistingXattrs && forgeable && target.hasMetadata(entry)
                return try self.view(of: entry, in: trusted ? options.to : options.from)
            }
            // Later names of an inode wait for the walk's order (a directory has one name).
            var made: Result<Void, VirtFSError>?
            var copy: DirectoryContext?
            if entry.stat.fileType == .directory || entry.stat.nlink == 1, case .success(let (view, _)) = view {
                made = Result { () throws(VirtFSError) in copy = try make(entry, view, linking: nil) }
            }
            // (What is in a directory that has no copy fails, rather than waits.) Its times
            // are given back when the walk leaves it.
            if entry.stat.fileType == .directory { copies.made(key(entry), copy, times: (try? view.get()).map { ($0.0.host.atime, $0.0.host.mtime) }) }
            return (entry, view, made)
        }, visit: { copied in
            let entry = copied.entry
            do throws(VirtFSError) {
                let (view, forged) = try copied.view.get()
                if !forged.isEmpty {
                    summary.dropped += forged.count
                    event(.dropped(Self.droppedForged(entry.path, forged)))
                }
                if let made = copied.made {
                    try made.get()
                } else {
                    _ = try make(entry, view, linking: links[entry.stat.identity])
                    if links[entry.stat.identity] == nil { links[entry.stat.identity] = Self.components(entry.path, below: root) }
                }
                summary.note(.converted(view), event)
            } catch {
                summary.note(.failed(error.at(entry.path)), event)
            }
        }, leave: { directory in
            if let (copy, times) = copies.left(directory.path), let copy, let (atime, mtime) = times {
                try? Sys.setTimes(copy.fd, [UInt8(ascii: ".")], atime: atime, mtime: mtime)
            }
        }, failure: { summary.note(.failed($0), event) })
        if let rootTimes = try? root.entry().stat {
            try? Sys.setTimes(output.directory.fd, [UInt8(ascii: ".")], atime: rootTimes.atime, mtime: rootTimes.mtime)
        }
        // The copy is on disk when the run ends, as cp's is not: flushed while it was made, and
        // once more for what the last flush missed.
        flush.finish()
        do { try Sys.syncFilesystem(output.directory.fd, output.path) } catch let error {
            summary.note(.failed(error), event)
        }
        return summary
    }

    /// What an in-place run would convert: every entry not yet in the target form. Writes nothing.
    public func plan(_ root: Walker.Location, entry report: (GuestView) -> Void) -> Summary {
        var summary = Summary()
        // A fresh run to mapped-xattr first drops user.virtfs.* found elsewhere as forged, so
        // no entry is in the target form then, unless the tree was converted already.
        let recorded = ConversionRecord.isRecorded(in: root.directory)
        var dropsForged = !recorded && self.dropsForged
        if dropsForged, case .done = alreadyConverted(root) { dropsForged = false }
        Walker(options: walkOptions).walk(root, visit: { entry in
            if TemporaryName.matches(entry.name) || isStateFile(entry, root: root) { return }
            let current = dropsForged && !source.keepsMetadataByName ? options.from : form(of: entry)
            guard let view = try? current.codec.decode(entry) else {
                summary.failures += 1
                return
            }
            guard current != options.to else {
                summary.alreadyDone += 1
                return
            }
            if target.metadataForgeable && !options.trustExistingXattrs {
                // What the run would drop as forged.
                summary.dropped += view.attributes.xattrs.filter { target.holdsMetadata(xattr: $0.name) }.count
            }
            summary.count(view)
            report(view)
        }, failure: { _ in summary.failures += 1 })
        return summary
    }

    // MARK: in place

    var stateText: [UInt8] { Array("virtfs-convert from=\(options.from.rawValue) to=\(options.to.rawValue)\n".utf8) }

    /// Converts the tree in place. Throws before changing anything when another conversion is
    /// unfinished; per-entry failures are events, and leave the entry in its old form.
    /// With the `survey` of a preflight run on the same locked tree, it does not walk the
    /// tree before it starts.
    public func inPlace(_ root: Walker.Location, survey: Survey = Survey(), event: (Event) -> Void) throws(VirtFSError) -> Summary {
        var summary = Summary()
        let rootDir = root.directory
        let resumed: Bool
        // Every directory's times before this conversion changed anything (see writeState).
        var recordedTimes: [String: (Timestamp, Timestamp)] = [:]
        if let (existing, _) = try? Sys.readFile(rootDir.fd, ConversionRecord.fileName, limit: Self.stateLimit) {
            resumed = true
            let (header, times) = Self.parseState(existing)
            guard header == stateText else {
                if let record = ConversionRecord.parse(existing) {
                    throw VirtFSError.interruptedConversion(record, path: root.path)
                }
                throw VirtFSError.refused("convert", path: root.path,
                    "an unfinished conversion (\(String(decoding: header.dropLast(), as: UTF8.self))) is recorded in .virtfs-convert-state: run it again to finish it first")
            }
            recordedTimes = times
        } else {
            resumed = false
            switch alreadyConverted(root) {
            case .mixed(let refusal): throw refusal
            case .done(let entries):
                // Finished before (a run stopped after its last step): nothing to do.
                summary.alreadyDone = entries
                return summary
            case .no: break
            }
            // Before the state is recorded, in the walk that reads the directories' times: from
            // then on user.virtfs.mode marks converted entries. (Removing an xattr changes no
            // directory's times.)
            if survey.complete {
                // (Only a run that drops them finds them.)
                for path in survey.forged {
                    guard let entry = try? Walker.inside(root, relative: Self.components(path, below: root), path: path).entry() else { continue }
                    dropForgedXattrs(of: entry, summary: &summary, event: event)
                }
                recordedTimes = try writeState(root, times: survey.times)
            } else {
                recordedTimes = try writeState(root) { entry in
                    if dropsForged { dropForgedXattrs(of: entry, summary: &summary, event: event) }
                }
            }
        }
        let rootEntry = try root.entry()
        let rootStat = rootEntry.stat
        // A fresh run to a model that keeps metadata by name finds none of it (the root's,
        // written first, would say otherwise), so it does not look for it entry by entry.
        let unmarked = !resumed && target.keepsMetadataByName && !target.hasMetadata(rootEntry)
        let rootTimes = recordedTimes["."] ?? (rootStat.atime, rootStat.mtime)
        var links: [FileIdentity: [[UInt8]]] = [:]
        // Inodes with several names: how many are in the target form so far (see the top).
        var namesDone: [FileIdentity: (count: UInt64, path: [UInt8])] = [:]
        // Inodes with several names converted by this run through one of them: the others
        // are found in the target form, but this run converted them.
        var convertedInodes: Set<FileIdentity> = []
        // Durability in batches, as dpkg and git do it: the steps of each entry are ordered so
        // that a run killed anywhere loses nothing (see the top); for a power loss, what is done
        // is flushed on another thread every half second and at the end, before the state file
        // goes. What changed after the last flush may come back in an earlier form after a power
        // loss; the state file, flushed before anything changes, makes a re-run finish it.
        let flush = BackgroundFlush(rootDir.fd)
        var cleaned: DirectoryContext?
        // Per directory: its times as recorded with the state, before anything changed (writing
        // the state changed the root's), given back when it is left.
        typealias Times = (Timestamp, Timestamp)
        func step(_ entry: HostEntry, _ alone: Alone) -> Times? {
            if isStateFile(entry, root: root) { return nil }
            if TemporaryName.matches(entry.name) {
                // Half-built by an interrupted run, never renamed into place.
                target.discardTemporary(entry)
                return nil
            }
            var attempted = false
            let times = entry.stat.fileType != .directory ? nil
                : entry.isExportRoot ? rootTimes : recordedTimes[Self.stateKey(entry.path, root: root)] ?? (entry.stat.atime, entry.stat.mtime)
            if let (alreadyDone, view, failure) = alone {
                if alreadyDone { summary.alreadyDone += 1 }
                if let view { summary.note(.converted(view), event) }
                if let failure { summary.note(.failed(failure), event) }
                return times
            }
            do throws(VirtFSError) {
                let shared = entry.stat.fileType != .directory && entry.stat.nlink > 1
                let found = unmarked ? options.from : form(of: entry)
                // Its inode was converted through another name (or before an interruption):
                // the inode's metadata is the target's now, this name's own is all that is left.
                let leftoverName = found != options.to && found.codec.keepsMetadataByName && target.hasMetadata(entry)
                let current = leftoverName ? options.to : found
                if found == options.to {
                    if shared && convertedInodes.contains(entry.stat.identity) {
                        let view = try target.decode(entry)
                        summary.note(.converted(view), event)
                    } else {
                        summary.alreadyDone += 1
                    }
                    if shared && target.keepsMetadataByName && links[entry.stat.identity] == nil {
                        links[entry.stat.identity] = Self.components(entry.path, below: root)
                    }
                } else {
                    attempted = true
                    let (view, _) = try self.view(of: entry, in: current, ours: true)
                    let rebuilt = try convert(entry, view: view, from: current, root: root, links: &links, cleaned: &cleaned)
                    summary.note(.converted(view), event)
                    if shared && !rebuilt { convertedInodes.insert(entry.stat.identity) }
                    // A rebuilt object is new, made in its final form, with this one name.
                    if rebuilt { return times }
                }
                if shared {
                    let seen = (namesDone[entry.stat.identity]?.count ?? 0) + 1
                    guard seen >= entry.stat.nlink else {
                        namesDone[entry.stat.identity] = (seen, namesDone[entry.stat.identity]?.path ?? entry.path)
                        return times
                    }
                    namesDone[entry.stat.identity] = nil
                }
                // An inode neither this run nor an interrupted one touched is left alone.
                if resumed || attempted || convertedInodes.contains(entry.stat.identity) {
                    try finishInode(entry)
                }
            } catch {
                summary.note(.failed(error.at(entry.path)), event)
                cleaned = nil
            }
            return times
        }
        func leave(_ directory: DirectoryContext, _ times: Times) {
            target.discardTemporaries(in: directory)
            source.discardTemporaries(in: directory)
            if options.from != options.to { source.removeStorage(of: directory) }
            try? Sys.setTimes(directory.fd, [UInt8(ascii: ".")], atime: times.0, mtime: times.1)
        }
        // Directories visited and not yet left, with the times they get back when left.
        var open: [[UInt8]: Times] = [:]
        var walk = walkOptions
        if !resumed { walk.inFlight = TemporaryName.ours }
        Walker(options: walk).walk(root, jobs: options.jobs, transform: { entry in
            (entry, alone(entry, root: root, unmarked: unmarked, resumed: resumed))
        }, visit: { entry, alone in
            if let times = step(entry, alone) { open[entry.isExportRoot ? root.path : entry.path] = times }
        }, leave: { directory in
            if let times = open.removeValue(forKey: directory.path) { leave(directory, times) }
        }, failure: { summary.note(.failed($0), event) })
        for (_, left) in namesDone.sorted(by: { $0.value.path.lexicographicallyPrecedes($1.value.path) }) {
            summary.note(.failed(.refused("convert", path: left.path,
                "hard link whose other names were not all converted (outside the tree, or failed): its inode keeps its \(options.from.rawValue) form until they are")), event)
        }
        // Everything converted is on disk before the state file goes: until then a re-run after
        // a power loss knows there is a conversion to finish.
        flush.finish()
        try Sys.syncFilesystem(rootDir.fd, root.path)
        if summary.failures == 0 {
            try Sys.unlink(rootDir.fd, ConversionRecord.fileName)
            try? Sys.setTimes(rootDir.fd, [UInt8(ascii: ".")], atime: rootTimes.0, mtime: rootTimes.1)
        }
        return summary
    }

    static let stateLimit = 1 << 30

    /// Records the conversion, and the times of every directory as they are before anything
    /// changes (the state file itself changes the root's): a directory this run changes (a
    /// rebuilt object renamed in, a `.virtfs_metadata` made or removed) gets them back when
    /// done, even when that is in a later run. One line each: `times HEXPATH ATIME MTIME`.
    /// Returns them. A failure here (ENOSPC) leaves the tree as it was.
    /// `times`: the directories' times as a preflight found them; else a walk reads them
    /// (and shows `visit` every entry).
    func writeState(_ root: Walker.Location, times surveyed: [String: (Timestamp, Timestamp)]? = nil,
                    visiting visit: (HostEntry) -> Void = { _ in }) throws(VirtFSError) -> [String: (Timestamp, Timestamp)] {
        let temporary = ConversionRecord.temporaryName
        var times: [String: (Timestamp, Timestamp)] = [:]
        // A run stopped while writing this file (after making it, which changed the root's
        // times) left the times it had read: those are the ones from before.
        if let (leftover, _) = try? Sys.readFile(root.directory.fd, temporary, limit: Self.stateLimit) {
            let (header, recorded) = Self.parseState(leftover)
            if header == stateText { times = recorded }
        }
        if let surveyed {
            times.merge(surveyed) { leftover, _ in leftover }
        } else {
            var failure: VirtFSError?
            Walker(options: walkOptions).walk(root, visit: { entry in
                visit(entry)
                guard entry.stat.fileType == .directory else { return }
                let key = Self.stateKey(entry.path, root: root)
                if times[key] == nil { times[key] = (entry.stat.atime, entry.stat.mtime) }
            }, failure: { failure = failure ?? $0 })
            if let failure { throw failure }
        }
        func t(_ x: Timestamp) -> String { "\(x.seconds).\(x.nanoseconds)" }
        var text = stateText
        for (key, (atime, mtime)) in times { text += Array("times \(key) \(t(atime)) \(t(mtime))\n".utf8) }
        // Unnamed until complete where the filesystem allows it: the root's times change only
        // when the file holding them is in place.
        do {
            try Sys.writeWhole(root.directory.fd, ConversionRecord.fileName, via: temporary) { fd throws(VirtFSError) in
                try Sys.writeAll(fd, text, name: ConversionRecord.fileName)
                _ = try Sys.retry("fsync", ConversionRecord.fileName) { fsync(fd) }
            }
            try? Sys.unlink(root.directory.fd, temporary)
        } catch {
            if let (atime, mtime) = times["."] { try? Sys.setTimes(root.directory.fd, [UInt8(ascii: ".")], atime: atime, mtime: mtime) }
            throw error
        }
        return times
    }

    /// The state file's first line, and the directory times recorded after it.
    static func parseState(_ bytes: [UInt8]) -> (header: [UInt8], times: [String: (Timestamp, Timestamp)]) {
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard let first = lines.first else { return ([], [:]) }
        var times: [String: (Timestamp, Timestamp)] = [:]
        func timestamp(_ s: Substring) -> Timestamp? {
            let p = s.split(separator: ".")
            guard p.count == 2, let sec = Int64(p[0]), let nsec = UInt32(p[1]) else { return nil }
            return Timestamp(seconds: sec, nanoseconds: nsec)
        }
        for line in lines.dropFirst() {
            let f = String(decoding: line, as: UTF8.self).split(separator: " ")
            guard f.count == 4, f[0] == "times", let a = timestamp(f[2]), let m = timestamp(f[3]) else { continue }
            times[String(f[1])] = (a, m)
        }
        return (Array(first) + [UInt8(ascii: "\n")], times)
    }

    func dropForgedXattrs(of entry: HostEntry, summary: inout Summary, event: (Event) -> Void) {
        guard let names = try? entry.xattrNames() else { return }
        let forged = names.filter(target.holdsMetadata(xattr:))
        guard !forged.isEmpty else { return }
        for name in forged { try? entry.removeXattr(raw: name) }
        summary.dropped += forged.count
        event(.dropped(Self.droppedForged(entry.path, forged)))
    }

    /// A fresh conversion to mapped-xattr takes `user.virtfs.*` outside that model as forged
    /// and drops them: run on a tree already converted (the same command once more), that
    /// would wipe its metadata. A converted tree's root always carries `user.virtfs.mode`.
    /// When the root carries it and so does every entry, the conversion is done; when only
    /// some do, nothing is safe to assume and the run is refused.
    enum Converted {
        case no
        case done(entries: Int)
        case mixed(VirtFSError)
    }

    func alreadyConverted(_ root: Walker.Location) -> Converted {
        guard dropsForged, let entry = try? root.entry(), target.hasMetadata(entry),
              !source.hasMetadata(entry) else { return .no }
        var entries = 0
        var notConverted: [UInt8]?
        Walker(options: walkOptions).walk(root, visit: { entry in
            if isStateFile(entry, root: root) || TemporaryName.matches(entry.name) { return }
            entries += 1
            if notConverted == nil && (form(of: entry) != options.to || !target.hasMetadata(entry)) { notConverted = entry.path }
        }, failure: { _ in })
        guard let notConverted else { return .done(entries: entries) }
        return .mixed(VirtFSError.refused("convert", path: root.path,
            "the export root carries user.virtfs.mode as if converted to mapped-xattr, but \(String(decoding: notConverted, as: UTF8.self)) is not; converting from \(options.from.rawValue) would drop every user.virtfs.* value as forged: nothing done (check with virtfs-stat --model mapped-xattr; if a guest set it, remove it with setfattr -x user.virtfs.mode)"))
    }

    /// How a thread of a parallel conversion converted an entry by itself (nil: it left it to
    /// the walking thread, in walk order): found in the target form already, or converted with
    /// the view carried over (nil: it failed before); then perhaps failed.
    typealias Alone = (alreadyDone: Bool, view: GuestView?, failure: VirtFSError?)?

    /// Converts an entry on a thread of a parallel walk, or leaves it to the walking thread: what
    /// a thread does alone is what needs no other entry's state (an inode with one name). In a
    /// fresh run, an object rebuilt as another kind is built under the thread's temporary name,
    /// which the walk does not list (`inFlight`), and renamed over its old name. Hard links, leftover
    /// names and the run's own files go back to the walking thread.
    func alone(_ entry: HostEntry, root: Walker.Location, unmarked: Bool, resumed: Bool) -> Alone {
        guard !entry.isExportRoot, !TemporaryName.matches(entry.name), !isStateFile(entry, root: root),
              entry.stat.fileType == .directory || entry.stat.nlink == 1 else { return nil }
        let (current, decoded) = unmarked ? (options.from, nil)
            : read(entry) { model throws(VirtFSError) in try self.view(of: entry, in: model, ours: true).0 }
        if current != options.to && current.codec.keepsMetadataByName && target.hasMetadata(entry) { return nil }
        if current == options.to {
            do throws(VirtFSError) {
                if resumed { try finishInode(entry) }
                return (true, nil, nil)
            } catch {
                return (true, nil, error.at(entry.path))
            }
        }
        // The view once the entry is converted (then only its inode's part can fail).
        var converted: GuestView?
        do throws(VirtFSError) {
            let view = try (decoded ?? Result { () throws(VirtFSError) in try self.view(of: entry, in: current, ours: true).0 }).get()
            // Resumed, the walk lists temporary names (an interrupted run's are removed in walk
            // order), so objects are rebuilt by the walking thread; a fresh run has none (see preflight).
            let hostType = entry.stat.fileType ?? .regular
            let targetIsPlain = options.to.isMapped || view.type == .regular || view.type == .directory
            guard !resumed || (hostType == .regular || hostType == .directory) && targetIsPlain else { return nil }
            var links: [FileIdentity: [[UInt8]]] = [:]
            // (A fresh run's temporary names are its own.)
            var cleaned: DirectoryContext? = entry.directory
            let rebuilt = try convert(entry, view: view, from: current, root: root, links: &links, cleaned: &cleaned)
            converted = view
            // A rebuilt object is new, made in its final form.
            if !rebuilt { try finishInode(entry) }
            return (false, view, nil)
        } catch {
            // A failed rebuild may leave this thread's temporary name behind: it goes now, as the
            // walking thread clears its own after a failure, so the next rebuild here starts clean.
            options.to.codec.discardTemporary(TemporaryName.current, in: entry.directory)
            current.codec.discardTemporary(TemporaryName.current, in: entry.directory)
            return (false, converted, error.at(entry.path))
        }
    }

    /// The inode's own part of the conversion, once every name of it is in the target form:
    /// mapped-xattr's `user.virtfs.*` go when leaving it; host ACLs go when entering it (the
    /// guest's are in `user.virtfs.system.*` now); leaving passthrough or none, the inode goes
    /// to the user QEMU runs as, with fmode/dmode. Idempotent: an entry found already converted
    /// after an interruption passes here again.
    func finishInode(_ entry: HostEntry) throws(VirtFSError) {
        guard entry.stat.fileType == .regular || entry.stat.fileType == .directory else { return }
        let names = try entry.xattrNames()
        if options.from != options.to && names.contains(where: source.holdsMetadata(xattr:)) {
            try source.removeMetadata(of: entry)
        }
        // (What the walk saw is still so: nothing before this step changes owner or mode.)
        try target.settle(entry, names: names, placement: options.from.isMapped ? nil : options.placement)
    }

    /// One entry from its current form to the target's, with one commit point (see above); the
    /// inode's own part waits for `finishInode`. Returns true when the host object was rebuilt
    /// (a new object, complete in the target form).
    /// `cleaned`: the directory whose temporaries this run has cleared since its last failure
    /// (a leftover of this run's temporary name can only come from a failed step).
    func convert(_ entry: HostEntry, view: GuestView, from current: SecurityModel, root: Walker.Location,
                 links: inout [FileIdentity: [[UInt8]]], cleaned: inout DirectoryContext?) throws(VirtFSError) -> Bool {
        let to = options.to
        let a = view.attributes
        let hostType = entry.stat.fileType ?? .regular
        let hostIsPlain = hostType == .regular || hostType == .directory
        let targetIsPlain = to.isMapped || a.type == .regular || a.type == .directory
        let dir = entry.directory
        let placement = options.placement
        // (Wanted only for an inode with several names.)
        var parts: [[UInt8]] { Self.components(entry.path, below: root) }
        if !current.isMapped && !to.isMapped {
            return false  // passthrough and none store the same inode
        }
        if current == to {
            // mapped-file -> mapped-xattr, the inode done through another name: drop this
            // name's metadata file.
            try source.removeMetadata(of: entry)
            return false
        }
        if !entry.isExportRoot && (!hostIsPlain || !targetIsPlain) {
            // The host object changes kind: build it complete aside, then rename it over. A
            // later name of the same old object becomes a link of the new one, as it was.
            let temporary = TemporaryName.current
            let codec = to.codec
            if cleaned !== dir {
                codec.discardTemporary(temporary, in: dir)
                current.codec.discardTemporary(temporary, in: dir)
                cleaned = dir
            }
            // (The old object's link count already dropped with each name replaced before.)
            let old = entry.stat.identity
            if let first = links[old], let firstLocation = try? Walker.inside(root, relative: first, path: []),
               let firstEntry = try? firstLocation.entry(), firstEntry.stat.fileType == (to.isMapped ? .regular : a.type) {
                try codec.link(firstEntry, as: temporary, in: dir, placement: placement)
                withExtendedLifetime(firstLocation) {}
            } else {
                try codec.create(a, named: temporary, in: dir, content: .empty, placement: placement)
                try Sys.setTimes(dir.fd, temporary, atime: view.host.atime, mtime: view.host.mtime)
                if entry.stat.nlink > 1 { links[old] = parts }
            }
            try codec.commitTemporary(temporary, as: entry.name, in: dir, dataFirst: false)
            // The old object went with its in-inode metadata; a name's own goes now.
            try current.codec.removeNameMetadata(of: entry)
            // Its last name replaced, the old inode is freed and its number may come back.
            if entry.stat.nlink == 1 { links[old] = nil }
            return true
        }
        if to.isMapped {
            let firstLocation = try links[entry.stat.identity].map { parts throws(VirtFSError) in try Walker.inside(root, relative: parts, path: []) }
            // Another name of this inode is converted: share its metadata, as QEMU's link does.
            // (The first name's directory stays open meanwhile.)
            let shared = hostType != .directory ? try firstLocation.map { first throws(VirtFSError) in
                try target.shareMetadata(of: first.name, in: first.directory, with: entry.name, in: dir, placement: placement)
            } ?? false : false
            if !shared { try target.update(a, of: entry, placement: placement) }
            if entry.stat.nlink > 1 && hostType != .directory && links[entry.stat.identity] == nil {
                links[entry.stat.identity] = parts
            }
            // Leaving mapped-file, this name's metadata file goes now (the commit point);
            // leaving mapped-xattr, the inode's xattrs wait for its last name.
            try current.codec.removeNameMetadata(of: entry)
        } else {
            try target.update(a, of: entry, placement: placement)
            try current.codec.removeMetadata(of: entry)
        }
        // Metadata calls leave a file's times alone; only a directory's change (its metadata
        // directory made or removed), and those come back when it is left, too.
        if hostType == .directory || view.host.atime != entry.stat.atime || view.host.mtime != entry.stat.mtime {
            try? Sys.setTimes(dir.fd, entry.name, atime: view.host.atime, mtime: view.host.mtime)
        }
        return false
    }
}
