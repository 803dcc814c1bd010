import Foundation

/// Text made safe for HTML/XML markup: `&`, `<`, `>`, `"` and `'` written as references. Its two users
/// differ on purpose in how they spell the quotes and in what else they do, so each says which it is.
enum MarkupEscaping {
    /// jinja2's `escape` filter (markupsafe), byte for byte: `"` and `'` as `&#34;` and `&#39;`, every
    /// other character kept.
    case markupsafe
    /// SVG (XML 1.0) character data and attribute values: `"` and `'` as `&quot;` and `&apos;`, and the
    /// characters XML 1.0 forbids (controls other than tab, LF and CR; U+FFFE, U+FFFF) dropped.
    case xml

    func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += self == .xml ? "&quot;" : "&#34;"
            case "'": out += self == .xml ? "&apos;" : "&#39;"
            default:
                let v = u.value
                if self == .xml, (v < 0x20 && v != 0x9 && v != 0xA && v != 0xD) || v == 0xFFFE || v == 0xFFFF { continue }
                out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
