extension Converter {
    /// The model a conversion of the export root `root` to `to` starts from: the one named,
    /// else the one an unfinished run recorded, else the detected one. An unfinished run to
    /// another model is refused before anything else: it is what the user has to finish first.
    public static func sourceModel(of root: Walker.Location, from: SecurityModel?, to: SecurityModel) throws(VirtFSError) -> SecurityModel {
        let record = ConversionRecord.read(in: root.directory)
        if let record, record.to != to {
            throw VirtFSError.interruptedConversion(record, path: root.path)
        }
        if let known = from ?? record?.from { return known }
        return try OperandResolver(root: nil).model(for: root, explicit: nil).0
    }
}

extension Converter.Summary {
    /// The closing line of a run over `tree`.
    public func line(tree: String, from: SecurityModel, to: SecurityModel, dryRun: Bool, seconds: String) -> String {
        let types = converted.sorted { $0.key.keyword < $1.key.keyword }.map { "\($0.value) \($0.key.keyword)" }.joined(separator: ", ")
        let verb = dryRun ? "would convert" : "converted"
        return "\(tree): \(verb) \(total) entries (\(types.isEmpty ? "none" : types)), \(bytes) bytes of file data, \(alreadyDone) already \(to.rawValue), \(dropped) untrusted xattrs dropped, \(failures) failed, \(seconds) s"
    }
}
