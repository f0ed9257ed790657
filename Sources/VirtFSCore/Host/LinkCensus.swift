/// The names a tree holds of each multiply-linked inode, so that a writer can tell an inode
/// whose every name is inside the tree from one that also has names elsewhere (a hard link
/// into the tree of, say, /etc/shadow, which a guest or a hostile archive can plant). Changing
/// such an inode (chown, chmod, setxattr, writing its data) changes the file outside; as root
/// that is a privilege escalation, so every writer asks `refuseOutside` first.
///
/// Taken lazily, on the first question about an inode with more than one link: one walk of
/// the tree that stats every name (metadata directories included) and keeps the names of
/// inodes with st_nlink > 1 only, so memory is bounded by the number of such names. A name in
/// a directory the walk cannot read is not counted, which errs toward "outside".
public final class LinkCensus: @unchecked Sendable {
    /// The tree's root: every name below it counts as inside.
    public let root: Walker.Location
    /// Whether the user allowed changing inodes with names outside the tree.
    public let allowOutside: Bool
    /// True when the tree is only the operand's directory (no export root was named): a name
    /// elsewhere in the real tree counts as outside, and the refusal says to name the root.
    public let scopeIsGuess: Bool
    private var table: [FileIdentity: [[[UInt8]]]]?

    public init(root: Walker.Location, allowOutside: Bool = false, scopeIsGuess: Bool = false) {
        self.root = root
        self.allowOutside = allowOutside
        self.scopeIsGuess = scopeIsGuess
    }

    /// The census of the tree an operand is in: the export root when one is known, else the
    /// operand itself when it is one, else the operand's directory.
    public convenience init(treeOf location: Walker.Location, root: Walker.Location?, allowOutside: Bool) {
        let guess = root == nil && !location.isExportRoot
        let scope = root ?? (location.isExportRoot ? location
            : Walker.Location(directory: location.directory, name: [UInt8(ascii: ".")], path: location.directory.path, isExportRoot: true))
        self.init(root: scope, allowOutside: allowOutside, scopeIsGuess: guess)
    }

    /// The components (below the root) of every name the tree has for this inode.
    public func namesInside(_ st: HostStat) -> [[[UInt8]]] {
        guard st.nlink > 1, st.fileType != .directory else { return [] }
        if table == nil { table = Self.take(root) }
        return table?[st.identity] ?? []
    }

    /// How many of the inode's links are names outside the tree (0 for a directory or an
    /// inode with a single link, which the walk reached through the tree).
    public func namesOutside(_ st: HostStat) -> UInt64 {
        guard st.nlink > 1, st.fileType != .directory else { return 0 }
        let inside = UInt64(namesInside(st).count)
        return st.nlink > inside ? st.nlink - inside : 0
    }

    /// Refuses to change the inode behind `path` when it has names outside the tree, unless the
    /// user allowed it.
    public func refuseOutside(_ st: HostStat, path: [UInt8], operation: String) throws(VirtFSError) {
        let outside = allowOutside ? 0 : namesOutside(st)
        guard outside > 0 else { return }
        var why = Self.explanation(st, outside: outside)
        if scopeIsGuess {
            why += "; the tree was taken to be \(Bytes.shellEscaped(root.path.isEmpty ? [UInt8(ascii: ".")] : root.path)): name the export root with --root"
        }
        throw VirtFSError.refused(operation, path: path, why)
    }

    /// Why an inode is left alone, for errors and fsck findings.
    public static func explanation(_ st: HostStat, outside: UInt64, allowed: Bool = false) -> String {
        "hard link to an inode with \(st.nlink) names, \(outside) of them outside the tree: changing it would change that file too"
            + (allowed ? " (changed anyway: --allow-outside-links)" : " (left alone; --allow-outside-links to change it)")
    }

    /// Records that the inode the names of `old` had is now `new` (a metadata file replaced by
    /// rename and relinked under every in-tree name), so later questions about it are answered.
    func moved(_ old: FileIdentity, to new: FileIdentity) {
        guard table != nil, let names = table?.removeValue(forKey: old) else { return }
        table?[new] = names
    }

    /// Forgets the census after names were relinked to other inodes; the next question takes it anew.
    func invalidate() {
        table = nil
    }

    static func take(_ root: Walker.Location) -> [FileIdentity: [[[UInt8]]]] {
        var table: [FileIdentity: [[[UInt8]]]] = [:]
        // Model nil: metadata directories and files are names like any other.
        Walker(options: .init(recursive: true)).walk(root, visit: { entry in
            guard entry.stat.nlink > 1, entry.stat.fileType != .directory, !entry.isExportRoot else { return }
            table[entry.stat.identity, default: []].append(Bytes.components(entry.path, below: root.path))
        }, failure: { _ in })
        return table
    }
}
