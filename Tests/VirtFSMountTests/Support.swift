import VirtFSCore
import VirtFSTestSupport
@testable import VirtFSMount

/// A tree made from a tree spec in `model`, served as a mount would serve it.
func servedTree(_ spec: String, _ model: SecurityModel, explicit: Bool = false, writable: Bool = false) throws -> (TemporaryDirectory, GuestFilesystem) {
    let dir = TemporaryDirectory()
    try TreeSpec(text: spec).materialize(at: dir.bytes, model: model, placement: HostPlacement())
    return (dir, try GuestFilesystem(tree: dir.bytes, model: explicit ? model : nil, writable: writable))
}

/// The errno a request fails with; nil when it succeeds, -1 for any other error.
func failure(_ body: () throws -> Void) -> Int32? {
    do { try body() } catch let error as GuestFilesystem.Failure { return error.errno } catch { return -1 }
    return nil
}
