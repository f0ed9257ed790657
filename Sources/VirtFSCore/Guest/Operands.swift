import Glibc

/// Turns the paths a user names into walk locations, the way every tool does it: with an
/// explicit export root (`--root`) operands are resolved inside it without following symlinks;
/// without one, a directory operand is an export root when it holds `.virtfs_metadata_root`, or
/// when it is walked recursively and its parent has no `.virtfs_metadata`; anything else is an
/// entry of whatever tree it is in.
public struct OperandResolver {
    public let root: Walker.Location?
    private let rootRealPath: [UInt8]?

    public init(root: [UInt8]?) throws(VirtFSError) {
        self.root = try root.map(Walker.exportRoot)
        rootRealPath = try root.map(Self.realPath)
    }

    public func locate(_ operand: [UInt8], recursive: Bool) throws(VirtFSError) -> Walker.Location {
        if let root, let rootRealPath {
            let real = try Self.realPathOfParent(operand)
            if real == rootRealPath {
                return Walker.Location(directory: root.directory, name: root.name, path: operand, isExportRoot: true)
            }
            guard real.starts(with: rootRealPath + [UInt8(ascii: "/")]) || rootRealPath == [UInt8(ascii: "/")] else {
                throw VirtFSError.refused("resolve", path: operand, "not inside the export root \(String(decoding: root.path, as: UTF8.self))")
            }
            let relative = Array(real.dropFirst(rootRealPath.count))
            return try Walker.inside(root, relative: Bytes.components(relative), path: operand)
        }
        if (try? Sys.stat(AT_FDCWD, operand))?.fileType == .directory, MappedFileCodec.isExportRoot(operand, recursive: recursive) {
            return try Walker.exportRoot(operand)
        }
        return try Walker.operand(operand)
    }

    /// An operand's location and the model to read it with.
    public func resolve(_ operand: [UInt8], recursive: Bool, explicit: SecurityModel?) throws(VirtFSError) -> (Walker.Location, SecurityModel) {
        let location = try locate(operand, recursive: recursive)
        return (location, try model(for: location, explicit: explicit).0)
    }

    /// The model to read a location with: the user's, else what the tree shows.
    /// A half-converted tree is refused whatever model is named: no model reads it right.
    public func model(for location: Walker.Location, explicit: SecurityModel?) throws(VirtFSError) -> (SecurityModel, ModelDetection?) {
        let rootDirectory = exportRoot(of: location)
        if let rootDirectory, let record = ConversionRecord.read(in: rootDirectory) {
            throw VirtFSError.interruptedConversion(record, path: root?.path ?? location.path)
        }
        if let explicit { return (explicit, nil) }
        let detection = rootDirectory.map { ModelDetection.detect(in: $0) }
            ?? ModelDetection.detect(in: location.directory, entry: try? location.entry(), limit: 64, exportRoot: false)
        // The record was read above: only an export root's detection reads it, and it found none.
        guard let model = detection.model else {
            throw VirtFSError.refused("detect", path: location.path, detection.explanation)
        }
        return (model, detection)
    }

    /// The guest's user database: from the export root when one is known.
    public func accounts(for location: Walker.Location) -> GuestAccounts {
        exportRoot(of: location).map { GuestAccounts.load(root: $0) } ?? GuestAccounts()
    }

    /// The export root's directory: the one named, else the operand when it is an export root.
    func exportRoot(of location: Walker.Location) -> DirectoryContext? {
        root?.directory ?? (location.isExportRoot ? location.directory : nil)
    }

    public static func realPath(_ path: [UInt8]) throws(VirtFSError) -> [UInt8] {
        guard let resolved = Sys.withCString(path, { realpath($0, nil) }) else {
            throw VirtFSError.system("realpath", path: path, errno: errno)
        }
        defer { free(resolved) }
        return Array(UnsafeBufferPointer(start: UnsafeRawPointer(resolved).assumingMemoryBound(to: UInt8.self), count: strlen(resolved)))
    }

    /// The real path of the operand's parent joined with its last component, which is not
    /// resolved (it may be a symlink, which the tools look at, not through).
    static func realPathOfParent(_ operand: [UInt8]) throws(VirtFSError) -> [UInt8] {
        let (parent, name) = Bytes.splitParent(operand)
        if name == [UInt8(ascii: ".")] || name == Array("..".utf8) || name.isEmpty {
            return try realPath(operand)
        }
        return Bytes.join(try realPath(parent), name)
    }
}
