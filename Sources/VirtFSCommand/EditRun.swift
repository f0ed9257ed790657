import ArgumentParser
import Glibc
import VirtFSCore

/// The options virtfs-chown and virtfs-chmod share with chown(1) and chmod(1).
public struct EditOptions: ParsableArguments {
    @Flag(name: [.customShort("R"), .long], help: "Change every entry below each directory operand.")
    public var recursive = false

    @Flag(name: [.customShort("v"), .long], help: "Say what is done for every entry.")
    public var verbose = false

    @Flag(name: [.customShort("c"), .long], help: "Like --verbose, but only for entries that change.")
    public var changes = false

    @Flag(name: [.customShort("n"), .long], help: "Show what would change; write nothing.")
    public var dryRun = false

    @Flag(name: .long, help: "Also change entries whose host inode has hard links outside the tree (refused by default).")
    public var allowOutsideLinks = false

    public init() {}
}

/// What virtfs-chown and virtfs-chmod share: operands resolved in the tree, -R, --dry-run, and
/// coreutils' -v/-c reporting.
public struct EditRun {
    public enum Verbosity {
        case quiet, changes, verbose
    }

    public let console: Console
    public let tree: TreeOptions
    public let edit: EditOptions
    public let verbosity: Verbosity

    public init(tool: String, tree: TreeOptions, edit: EditOptions) {
        console = Console(tool: tool)
        self.tree = tree
        self.edit = edit
        verbosity = edit.verbose ? .verbose : (edit.changes || edit.dryRun ? .changes : .quiet)
    }

    /// Decodes one entry named by the user (for --reference).
    public func reference(_ path: String) throws(VirtFSError) -> GuestView {
        let (location, model) = try OperandResolver(root: tree.rootBytes).resolve(RawArguments.bytes(for: path), recursive: false, explicit: tree.model)
        return try model.codec.decode(location.entry())
    }

    /// The guest's user database of the tree the operands are in.
    public func accounts(for files: [String]) -> GuestAccounts {
        guard let resolver = try? OperandResolver(root: tree.rootBytes), let first = files.first,
              let location = try? resolver.locate(RawArguments.bytes(for: first), recursive: edit.recursive) else { return GuestAccounts() }
        return resolver.accounts(for: location)
    }

    /// chown(1): OWNER[:GROUP] (or `reference`'s owner) given to the files among `operands`,
    /// only where the owner is `from`'s; set-id bits cleared as the guest's kernel clears them.
    public func chown(_ operands: [String], reference: String?, from: String?, preserveSetid: Bool) throws {
        let accounts = accounts(for: reference == nil ? Array(operands.dropFirst()) : operands)
        let (target, files) = try change(operands, reference: reference, { (uid: Optional($0.uid), gid: Optional($0.gid)) }, accounts.parseOwner)
        let required: (uid: UInt32?, gid: UInt32?) = try usage { () throws(VirtFSError) in try from.map(accounts.parseOwner) ?? (nil, nil) }
        func name(_ a: GuestAttributes) -> String {
            "\(accounts.users[a.uid] ?? String(a.uid)):\(accounts.groups[a.gid] ?? String(a.gid))"
        }
        try run(files, skipSymlinks: false, transform: { view in
            if let uid = required.uid, view.uid != uid { return nil }
            if let gid = required.gid, view.gid != gid { return nil }
            var after = view.attributes.changingOwner(uid: target.uid, gid: target.gid)
            if preserveSetid { after.permissions = view.attributes.permissions }
            return after
        }, describe: { path, before, after, _ in
            let owner = before.uid != after.uid || before.gid != after.gid
                ? "changed ownership of \(path) from \(name(before.attributes)) to \(name(after))"
                : "ownership of \(path) retained as \(name(after))"
            return owner + ModeChange.setidCleared(from: before.attributes.permissions, to: after.permissions)
        })
    }

    /// chmod(1): MODE (or `reference`'s mode) applied to the files among `operands`, symlinks
    /// skipped, limited by the umask as chmod's is.
    public func chmod(_ operands: [String], reference: String?) throws {
        let (change, files) = try change(operands, reference: reference, { ModeChange(exactly: $0.attributes.permissions) }, ModeChange.init)
        let mask = umask(0)
        umask(mask)
        func shown(_ p: UInt32, _ type: FileType) -> String {
            "0\(String(p, radix: 8).leftPadded(to: 3)) (\(StatFormatter.modeString(type.rawValue | p).dropFirst()))"
        }
        try run(files, skipSymlinks: true, transform: { view in
            view.attributes.changingPermissions(change.apply(to: view.attributes.permissions, isDirectory: view.type == .directory, umask: UInt32(mask)))
        }, describe: { path, before, after, changed in
            changed
                ? "mode of \(path) changed from \(shown(before.attributes.permissions, before.type)) to \(shown(after.permissions, after.type))"
                : "mode of \(path) retained as \(shown(after.permissions, after.type))"
        })
    }

    /// The change a chown or chmod makes: `reference`'s, else the first operand's, which is then
    /// no file. One that cannot be read is a usage error, as in coreutils (exit 1).
    func change<T>(_ operands: [String], reference: String?, _ fromReference: (GuestView) -> T,
                   _ parse: (String) throws(VirtFSError) -> T) throws -> (T, [String]) {
        try usage { () throws(VirtFSError) in
            if let reference { return (fromReference(try self.reference(reference)), operands) }
            return (try parse(operands[0]), Array(operands.dropFirst()))
        }
    }

    func usage<T>(_ body: () throws(VirtFSError) -> T) throws -> T {
        do { return try body() } catch {
            console.error(error)
            throw ExitCode(1)
        }
    }

    /// Runs `transform` over every operand (and, with -R, everything below), reporting with
    /// `describe(path, before, after, changed)`, the path quoted as coreutils quotes it in
    /// -v lines. Returns normally or throws the exit status.
    public func run(_ files: [String], skipSymlinks: Bool,
                    transform: (GuestView) -> GuestAttributes?,
                    describe: (String, GuestView, GuestAttributes, Bool) -> String) throws {
        let resolver = try usage { () throws(VirtFSError) in try OperandResolver(root: tree.rootBytes) }
        for file in files {
            guard let (location, model) = console.attempt({
                try resolver.resolve(RawArguments.bytes(for: file), recursive: edit.recursive, explicit: tree.model)
            }) else { continue }
            // One writer at a time: the export root when one is named, else the operand's tree;
            // held while this operand is changed (operands may share a tree).
            let lock = edit.dryRun ? nil : console.attempt { try TreeLock(resolver.root ?? location) }
            if !edit.dryRun && lock == nil { continue }
            defer { lock?.release() }
            let links = LinkCensus(treeOf: location, root: resolver.root, allowOutside: edit.allowOutsideLinks)
            let editor = Editor(model: model, dryRun: edit.dryRun, links: links)
            Walker(options: .init(recursive: edit.recursive, model: model)).walk(location, visit: { entry in
                do {
                    let change = try editor.edit(entry) { view in
                        if skipSymlinks && view.type == .symlink {
                            if verbosity == .verbose {
                                console.write("neither symbolic link \(Bytes.shellEscaped(view.path, always: true)) nor referent has been changed\n")
                            }
                            return nil
                        }
                        return transform(view)
                    }
                    if let change, verbosity == .verbose || (verbosity == .changes && change.changed) {
                        console.write((edit.dryRun ? "would: " : "") + describe(Bytes.shellEscaped(change.before.path, always: true), change.before, change.after, change.changed) + "\n")
                    }
                } catch {
                    console.error(error)
                }
            }, failure: console.error)
        }
        console.flush()
        if console.failures > 0 { throw ExitCode(1) }
    }
}
