import Glibc

/// Changes the guest view of entries in place (chown, chmod): decode with the tree's model,
/// transform the guest view, write it back through the same codec. Only the guest-owned
/// metadata changes; each entry's update is atomic per value (an xattr, or a metadata file
/// replaced by rename), so an interrupted run leaves every entry readable and can be re-run.
/// An entry whose host inode also has names outside the tree is refused (see `LinkCensus`).
public struct Editor {
    public let model: SecurityModel
    public let dryRun: Bool
    public let links: LinkCensus?
    let codec: any ModelCodec

    public init(model: SecurityModel, dryRun: Bool, links: LinkCensus? = nil) {
        self.model = model
        self.dryRun = dryRun
        self.links = links
        codec = model.codec
    }

    public struct Change {
        public var before: GuestView
        public var after: GuestAttributes
        public var changed: Bool { before.attributes != after }
    }

    /// Applies `transform` to the entry's guest view; nil from it leaves the entry alone.
    public func edit(_ entry: HostEntry, _ transform: (GuestView) -> GuestAttributes?) throws(VirtFSError) -> Change? {
        let view = try codec.decode(entry)
        guard let after = transform(view) else { return nil }
        let change = Change(before: view, after: after)
        guard change.changed || model == .passthrough || model == .none else { return change }
        // A dry run reports the refusal the real run would meet.
        try links?.refuseOutside(entry.stat, path: entry.path, operation: "st_nlink")
        if !dryRun {
            // Metadata a root run creates belongs to whoever owns the entry on the host (the
            // user QEMU runs as), so that QEMU can still read it.
            let owner = geteuid() == 0 && model.isMapped ? (entry.stat.uid, entry.stat.gid) : nil
            try codec.update(after, of: entry, placement: HostPlacement(owner: owner, links: links))
        }
        return change
    }
}
