/// The toolkit's version, printed by every tool's --version and stamped on the Debian package
/// (scripts/package reads it from here).
public let virtfsToolsVersion = "0.2.0"
