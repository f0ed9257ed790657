import Glibc

/// The host owner and permission bits of an object, with whether it is a directory: what QEMU
/// (and the tools writing as it) give everything they create in a mapped tree (`fmode=`,
/// `dmode=`, QEMU's user), so that an entry without metadata which looks exactly like that was
/// written by them and lost its metadata, while a file a person copied in looks like its copier.
public struct HostProfile: Sendable, Hashable {
    public var directory: Bool
    public var uid: UInt32
    public var gid: UInt32
    public var permissions: UInt32

    public init(_ st: HostStat) {
        directory = st.fileType == .directory
        uid = st.uid
        gid = st.gid
        permissions = st.permissions
    }
}

/// What a metadata-less regular file of a mapped tree can only be: the stored form of a
/// symlink or a device whose metadata was stripped (a host tool that adds a symlink or a
/// device adds a real one).
public enum MappedShape: Sendable, Equatable {
    /// Data that is a path (no NUL, no newline) naming an entry that exists in the tree.
    case symlink(target: [UInt8])
    /// An empty file in the tree's top-level `dev` directory.
    case device

    /// The shape of `entry`, a regular file at `components` below the export root `root`,
    /// or nil when its data could be anything.
    static func of(_ entry: HostEntry, components: [[UInt8]], root: DirectoryContext) -> MappedShape? {
        guard entry.stat.fileType == .regular, !components.isEmpty else { return nil }
        if entry.stat.size == 0 {
            return components.count == 2 && components[0] == Array("dev".utf8) ? .device : nil
        }
        guard entry.stat.size <= 1024, let (data, _) = try? entry.readContent(limit: 1024),
              !data.contains(0), !data.contains(UInt8(ascii: "\n")) else { return nil }
        return resolves(data, from: Array(components.dropLast()), root: root) ? .symlink(target: data) : nil
    }

    /// Whether a symlink target, read from the directory at `base`, names an existing entry of
    /// the tree. It is resolved one component at a time from the root, never through a host
    /// symlink and never above the root (as in a chroot).
    static func resolves(_ target: [UInt8], from base: [[UInt8]], root: DirectoryContext) -> Bool {
        var parts = target.first == UInt8(ascii: "/") ? [] : base
        for component in target.split(separator: UInt8(ascii: "/")) {
            if component.elementsEqual(".".utf8) { continue }
            if component.elementsEqual("..".utf8) {
                _ = parts.popLast()
                continue
            }
            parts.append(Array(component))
            if parts.count > 40 { return false }
        }
        guard let last = parts.last else { return true }
        var directory = root
        for component in parts.dropLast() {
            guard SecurityModel.storing(name: component) == nil, let child = try? directory.child(component, path: []) else { return false }
            directory = child
        }
        return SecurityModel.storing(name: last) == nil && (try? Sys.stat(directory.fd, last)) != nil
    }
}

/// Which entries without metadata lost it, rather than being added on the host: the rule
/// virtfs-fsck's census counts with and its check classifies with, so that the two agree.
public struct LossRule: Sendable {
    /// The host profiles of the entries that do carry metadata (from a bounded sample).
    public var profiles: Set<HostProfile> = []
    /// Every entry without metadata lost it: the tree carries none at all, yet has entries
    /// that only make sense mapped.
    public var all = false

    public init() {}

    /// The rule for a tree whose sample is `detection`: the profile most of its entries with
    /// metadata share, per kind (file or directory).
    public init(_ detection: ModelDetection) {
        var best: [Bool: (HostProfile, Int)] = [:]
        for (profile, count) in detection.profiles where count > (best[profile.directory]?.1 ?? 0) {
            best[profile.directory] = (profile, count)
        }
        profiles = Set(best.values.map(\.0))
    }

    /// Whether an entry without metadata lost it.
    public func lost(_ entry: HostEntry, shape: MappedShape?) -> Bool {
        all || shape != nil || profiles.contains(HostProfile(entry.stat))
    }
}

/// One pass over a tree counting what a verdict rests on: entries with and without VirtFS
/// metadata (of either mapped model), entries that only make sense mapped, host special files,
/// what root owns. Memory is bounded: counters and the first few paths.
public struct TreeCensus: Sendable {
    public static let examples = 3

    public var entries = 0
    /// Entries carrying (some of) each mapped model's metadata.
    public var carried: [SecurityModel: Int] = [:]
    public var withoutMetadata = ModelDetection.Evidence(limit: examples)
    /// Entries without metadata that are shaped like a stored symlink or device.
    public var shaped = 0
    /// Entries without metadata the loss rule says lost it.
    public var lost = ModelDetection.Evidence(limit: examples)
    public var hostSpecial = 0
    public var rootOwned = ModelDetection.Evidence(limit: examples)
    /// The first shaped entry (a symlink's form preferred), as the guest would see it now.
    public var example: String?
    var exampleIsSymlink = false
    var exampleDepth = Int.max
    /// The last directory whose entries were counted, and whether it is below a reserved name:
    /// the same answer for all its entries, so the path is split once per directory.
    var reservedCheck: (directory: [UInt8], below: Bool)?

    public var carriers: Int { carried.values.max() ?? 0 }

    public init() {}

    /// Counts the tree below `root`, judging loss by `rule`.
    public static func take(_ root: Walker.Location, rule: LossRule, oneFileSystem: Bool = false) -> TreeCensus {
        var census = TreeCensus()
        var options = Walker.Options(recursive: true, oneFileSystem: oneFileSystem)
        options.hiddenStorage = SecurityModel.mappedCodecs
        options.auditStorage = false
        Walker(options: options).walk(root, visit: { entry in
            census.count(entry, root: root, rule: rule)
        }, failure: { _ in })
        return census
    }

    /// Counts one entry of the walk below `root` (a walk that hides mapped-file's metadata, or
    /// one that does not: what is below a reserved name is not counted either way), so that a
    /// walk made for something else (virtfs-fsck's check) takes the census on the way.
    public mutating func count(_ entry: HostEntry, root: Walker.Location, rule: LossRule) {
        if !entry.isExportRoot {
            if TemporaryName.isReserved(entry.name) || SecurityModel.storing(name: entry.name) != nil { return }
            if reservedCheck?.directory != entry.directory.path {
                reservedCheck = (entry.directory.path, Self.belowReservedName(entry.path, root: root.path))
            }
            if reservedCheck!.below { return }
        }
        entries += 1
        let st = entry.stat
        if st.uid == 0 { rootOwned.add(entry.path) }
        if let type = st.fileType, type != .regular && type != .directory { hostSpecial += 1 }
        var carries = false
        for codec in SecurityModel.mappedCodecs where codec.carriesMetadata(entry) {
            carried[codec.model, default: 0] += 1
            carries = true
        }
        guard !carries else { return }
        withoutMetadata.add(entry.path)
        let components = Bytes.components(entry.path, below: root.path)
        let shape = entry.isExportRoot ? nil : MappedShape.of(entry, components: components, root: root.directory)
        if let shape {
            shaped += 1
            note(shape, entry, components: components)
        }
        if !entry.isExportRoot || rule.all, rule.lost(entry, shape: shape) { lost.add(entry.path) }
    }

    /// Whether a directory of `path` below the export root is a model's storage (a walk that
    /// shows that storage goes into it). The entry's own name is checked apart.
    static func belowReservedName(_ path: [UInt8], root: [UInt8]) -> Bool {
        path.dropFirst(root.count).split(separator: UInt8(ascii: "/")).dropLast().contains { SecurityModel.storing(name: Array($0)) != nil }
    }

    /// Keeps the example a reader recognises best: a symlink's form before a device's, then the
    /// one nearest the root (`/bin` before `/usr/lib/x86_64-linux-gnu/libc.so`).
    mutating func note(_ shape: MappedShape, _ entry: HostEntry, components: [[UInt8]]) {
        let isSymlink = if case .symlink = shape { true } else { false }
        let better = example == nil || (isSymlink && !exampleIsSymlink)
            || (isSymlink == exampleIsSymlink && components.count < exampleDepth)
        guard better else { return }
        exampleDepth = components.count
        let name = Bytes.shellEscaped(Array("/".utf8) + components.joined(separator: [UInt8(ascii: "/")]))
        let size = String(entry.stat.size)
        // "an 8-byte", "an 11-byte", "an 18-byte": the article follows how the number is said.
        let article = size.hasPrefix("8") || (size.count % 3 == 2 && (size.hasPrefix("11") || size.hasPrefix("18"))) ? "an" : "a"
        let what = entry.stat.size == 0 ? "an empty regular file" : "\(article) \(size)-byte regular file"
        example = "\(name) as \(what) owned by uid \(entry.stat.uid)"
        exampleIsSymlink = isSymlink
    }
}
