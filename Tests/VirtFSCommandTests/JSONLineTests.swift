import FoundationEssentials
import Testing
import VirtFSCommand

/// The one JSON writer: keys sorted by bytes, slashes as they are, control characters escaped,
/// names that are not UTF-8 under `KEY_hex`, and every line valid JSON.
@Suite struct JSONLineTests {
    func text(_ fields: [String: Any]) -> String {
        String(decoding: JSONLine.encode(fields), as: UTF8.self)
    }

    @Test func keysAreSortedAndSlashesAreNotEscaped() {
        #expect(text(["path": "etc/passwd", "b": 1, "a": true]) == #"{"a":true,"b":1,"path":"etc/passwd"}"# + "\n")
    }

    @Test func controlCharactersQuotesAndBackslashesAreEscaped() {
        #expect(text(["s": "a\"b\\c\nd\u{1b}[2J\t"]) == #"{"s":"a\"b\\c\nd\u001b[2J\t"}"# + "\n")
    }

    @Test func aNameThatIsNotUTF8GoesUnderHex() {
        #expect(text(["path": [UInt8]([0x61, 0xff])]) == #"{"path_hex":"61ff"}"# + "\n")
        #expect(text(["path": Array("dir/ok".utf8)]) == #"{"path":"dir/ok"}"# + "\n")
    }

    @Test func anEmptyListIsAListAndAnEmptyNameAString() {
        #expect(text(["l": [String]() as [Any], "n": [UInt8]()]) == #"{"l":[],"n":""}"# + "\n")
    }

    @Test func nestedValuesNumbersAndFractions() {
        #expect(text(["o": ["z": UInt64.max, "y": -3] as [String: Any], "l": [1, "x", false] as [Any], "d": 0.25, "w": 2.0])
            == #"{"d":0.25,"l":[1,"x",false],"o":{"y":-3,"z":18446744073709551615},"w":2}"# + "\n")
    }

    @Test(arguments: [0.0, 0.004, 0.005, 1.5, 12.345, 99.999])
    func secondsPrintAsPrintfTwoDecimalsDoes(value: Double) {
        // What Python's '%.2f' % value (C doubles, as here) printed for these.
        let expected: [Double: String] = [0.0: "0.00", 0.004: "0.00", 0.005: "0.01", 1.5: "1.50", 12.345: "12.35", 99.999: "100.00"]
        #expect(Decimal2.fixed(value) == expected[value])
    }

    @Test func everyLineDecodesAsJSON() throws {
        let line = JSONLine.encode(["a": "x/y", "b": [UInt8]([0xfe]), "c": ["d": [1, 2]] as [String: Any], "e": "\u{0}\u{7f}"])
        let decoded = try JSONDecoder().decode([String: JSONAny].self, from: Data(line))
        #expect(decoded.keys.sorted() == ["a", "b_hex", "c", "e"])
    }
}

/// Any JSON value, for checking that a line decodes.
struct JSONAny: Decodable {
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { return }
        if (try? c.decode(Bool.self)) != nil { return }
        if (try? c.decode(Double.self)) != nil { return }
        if (try? c.decode(String.self)) != nil { return }
        if (try? c.decode([JSONAny].self)) != nil { return }
        _ = try c.decode([String: JSONAny].self)
    }
}
