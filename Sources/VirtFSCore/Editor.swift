import Glibc

/// Changes the guest view of entries in place (chown, chmod): decode with the tree's model,
/// transform the guest view, write it back through the same codec. Only the guest-owned
/// metadata changes; each entry's update is atomic per value (an xattr, or a metadata file
/// replaced by rename), so an interrupted run leaves every entry readable and can be re-run.
public struct Editor {
    public let model: SecurityModel
    public let dryRun: Bool
    let codec: any ModelCodec

    public init(model: SecurityModel, dryRun: Bool) {
        self.model = model
        self.dryRun = dryRun
        codec = model.codec
    }

    public struct Change {
        public var before: GuestView
        public var after: GuestAttributes
        public var changed: Bool { before.attributes != after }
    }

    /// Applies `transform` to the entry's guest view; nil from it leaves the entry alone.
    public func edit(_ entry: HostEntry, _ transform: (GuestView) throws -> GuestAttributes?) throws -> Change? {
        let view = try codec.decode(entry)
        guard let after = try transform(view) else { return nil }
        let change = Change(before: view, after: after)
        if !dryRun && (change.changed || model == .passthrough || model == .none) {
            // Metadata a root run creates belongs to whoever owns the entry on the host (the
            // user QEMU runs as), so that QEMU can still read it.
            let owner = geteuid() == 0 && model.isMapped ? (entry.stat.uid, entry.stat.gid) : nil
            try codec.update(after, of: entry, placement: HostPlacement(owner: owner))
        }
        return change
    }
}
