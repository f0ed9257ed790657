import Glibc
import VirtFSCore
import VirtFSTestSupport

/// The repository's testdata directory, found from this source file.
func testdata(_ relative: String) -> String {
    var url = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
    url = "/" + url + "/testdata/" + relative
    return url
}

func readText(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw VirtFSError.system("open", path: Array(path.utf8), errno: errno) }
    defer { close(fd) }
    return String(decoding: try Sys.readAll(fd, name: Array(path.utf8), limit: 1 << 24).bytes, as: UTF8.self)
}

/// Decodes every entry of a tree, keyed by path relative to the root (`.` for the root).
func decodeTree(_ root: String, model: SecurityModel) throws -> (views: [[UInt8]: GuestView], errors: [VirtFSError]) {
    var views: [[UInt8]: GuestView] = [:]
    var errors: [VirtFSError] = []
    let codec = model.codec
    let walker = Walker(options: .init(recursive: true, model: model))
    let prefix = Array(root.utf8)
    walker.walk(try Walker.exportRoot(prefix), visit: { entry in
        do {
            let view = try codec.decode(entry)
            var relative = Array(view.path.dropFirst(prefix.count))
            if relative.first == UInt8(ascii: "/") { relative.removeFirst() }
            views[relative.isEmpty ? [UInt8(ascii: ".")] : relative] = view
            errors += view.diagnostics
        } catch let error as VirtFSError {
            errors.append(error)
        } catch {}
    }, failure: { errors.append($0) })
    return (views, errors)
}
