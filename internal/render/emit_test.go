package render

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yamlv2 "go.yaml.in/yaml/v2"
)

// checkAppendYAML checks that appendYAML writes obj as yaml.v2 writes
// yamlValue(obj), or declines it.
func checkAppendYAML(t *testing.T, obj map[string]any) (written bool) {
	t.Helper()
	got, ok := appendYAML(nil, obj)
	if !ok {
		return false
	}
	v, vok := yamlValue(obj)
	if !vok {
		t.Fatalf("appendYAML wrote an object yamlValue refuses: %v", obj)
	}
	want, err := yamlv2.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("appendYAML differs from yaml.v2 (-yaml.v2 +appendYAML) for %q:\n%s", obj, diff)
	}
	return true
}

// emitStrings are scalars that take every path of yaml.v2's emitter: each
// style, its fallbacks, folding and escapes.
var emitStrings = []string{
	"", "a", " a", "a ", " ", "  ", "a  b", "a b", "-", "- a", "-a", "a -", "--- a", "---", "...", "..a",
	"?", "? a", "?a", "a?", ":", ": a", ":a", "a:", "a: b", "a:b", "a :", "#", "#a", "a #b", "a#b", "a# b",
	",", "a,b", "[a]", "{a}", "&a", "*a", "!a", "|a", ">a", "'a", "\"a", "%a", "@a", "`a", "a'b", "a\"b", "a\\b",
	"y", "Y", "yes", "no", "on", "off", "true", "True", "false", "null", "Null", "~", "n", "o", "t", "f",
	"1", "-1", "+1", "1.5", "-1.5", ".5", ".", ".inf", "-.inf", ".nan", "0x1F", "0o17", "017", "0b101", "-0b101",
	"1_000", "1e3", "1E-3", "1.", "+.5", "1:20", "-1:20:30.5", "190:20:30", "2001-12-14", "2001-12-14t21:59:43.10-05:00",
	"2001-12-14 21:59:43.10", "2001-13-45", "12345678901234567890", "99999999999999999999999", "0.0.1", "1.2.3",
	"tab\there", "\ttab", "bell\a", "nul\x00", "del\x7f", "esc\x1b", "cr\rlf", "\r",
	"line1\nline2", "line1\n", "line1\n\n", "\n", "\n\n", "\nlead", " lead\nx", "trail \nx", "x\n trail", "x\n\n y", "a\n \nb",
	"a\nb\ttab", "a\n\"q\"", "- a\nb", "#x\ny",
	strings.Repeat("word ", 40), strings.Repeat("word ", 40) + "end", strings.Repeat("w", 90) + " " + strings.Repeat("v", 30),
	strings.Repeat("ab  ", 40) + "z", strings.Repeat("x ", 100) + "'q' \"d\"", "'" + strings.Repeat("quoted ", 30) + "'",
	strings.Repeat("tab\t ", 30), "\"" + strings.Repeat("dq ", 40), strings.Repeat("a", 129), strings.Repeat("a", 128),
	strings.Repeat("long line of text ", 10) + "\n" + strings.Repeat("second ", 20) + "\n",
	"caf\u00e9", "\u00e9t\u00e9", "\u00a0nbsp", "nbsp\u00a0", "c1\u0080", "\u00ff", "\u0100", "\ud7ff", "\ue000", "\uefff",
	"\ufffd", "\ufffe", "\uffff", "x\ufeffy", "emoji \U0001f600", "\U0001f600", "\u65e5\u672c\u8a9e",
	strings.Repeat("\u65e5\u672c\u8a9e ", 40), strings.Repeat("na\u00efve \u2014 text ", 12), "a\n\u00e9\nb", "\u00e9\n\U0001f600\n",
	strings.Repeat("\u00e9 ", 50) + "'q'", "\"" + strings.Repeat("\u00e9\u00e9 ", 45),
}

// TestAppendYAML compares appendYAML with yaml.v2 on every string above as
// a key and as a value at several depths, in mappings and sequences.
func TestAppendYAML(t *testing.T) {
	for _, s := range emitStrings {
		objs := []map[string]any{
			{"k": s},
			{s: "v"},
			{s: map[string]any{s: []any{s, map[string]any{s: s, "b": []any{s}}, []any{s, []any{}}}}},
			{"a": []any{s, int64(1), 2.5, true, nil, map[string]any{}, []any{}}, "b": map[string]any{"c": map[string]any{"d": s}}},
			{"list": []any{[]any{s}, map[string]any{"x": []any{s}, s: map[string]any{}}}},
		}
		for _, o := range objs {
			if !checkAppendYAML(t, o) {
				t.Errorf("appendYAML declined %q", o)
			}
		}
	}
	// Numbers as decoding gives them, and the keys yaml.v2 orders by their
	// digits. (Not keys such as a1b, a9 and a10 together: yaml.v2's order
	// is not transitive there, so its output follows the map's order.)
	checkAppendYAML(t, map[string]any{"a": 1.0, "b": -3.0, "c": 1e15, "d": 0.1, "e": 1e-7, "f": 123456.789, "g": int64(-5), "h": 5})
	checkAppendYAML(t, map[string]any{"a10": 1, "a9": 1, "a09": 1, "a0": 1, "a00": 1, "b": 1, "B": 1, "_": 1, "1": 1, "10": 1, "2": 1, "a-1": 1, "a.1": 1, "ab1": 1})
	// Beyond what the fast path writes: declined, for the slow one.
	for _, o := range []map[string]any{{"k": "\ufeffbom"}, {"k": "a\u2028b"}, {"k": "a\u0085b"}, {"k": "\xff"}, {"k": 1e300}, {"k": []any{int32(1)}}} {
		if _, ok := appendYAML(nil, o); ok {
			t.Errorf("appendYAML wrote %v, which it should leave to yaml.v2", o)
		}
	}
}

// unicodeChars are characters beyond ASCII that yaml.v2 writes as they are
// or escapes.
var unicodeChars = []string{"\u00e9", "\u00a0", "\u0080", "\u009f", "\u00ff", "\u2014", "\ud7ff", "\ue000", "\ufffe", "\ufeff", "\U0001f600", "\u65e5"}

// TestAppendYAMLRandom compares appendYAML with yaml.v2 on random trees of
// random text, weighted to the characters the emitter treats apart.
func TestAppendYAMLRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "  \n\n\t'\"\\:#-?,[]{}&*!|>%@`.01aZ~_\r\x00\x7f"
	str := func() string {
		n := r.IntN(12)
		if r.IntN(8) == 0 {
			n = 60 + r.IntN(140)
		}
		var b strings.Builder
		for range n {
			if r.IntN(3) == 0 {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			} else if r.IntN(6) == 0 {
				b.WriteString(unicodeChars[r.IntN(len(unicodeChars))])
			} else {
				b.WriteByte(byte(0x20 + r.IntN(0x5f)))
			}
		}
		// Not at the start: appendYAML declines such strings.
		return strings.TrimLeft(b.String(), "\ufeff")
	}
	// Keys without digits: with them yaml.v2's order of keys is not
	// transitive (see above), and its output follows the map's order.
	key := func() string {
		return strings.Map(func(r rune) rune {
			if '0' <= r && r <= '9' {
				return 'a' + r - '0'
			}
			return r
		}, str())
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := r.IntN(8); {
		case depth > 3 || k < 4:
			return str()
		case k == 4:
			l := make([]any, r.IntN(4))
			for i := range l {
				l[i] = value(depth + 1)
			}
			return l
		default:
			m := map[string]any{}
			for range r.IntN(4) {
				m[key()] = value(depth + 1)
			}
			return m
		}
	}
	for range 3000 {
		obj := map[string]any{key(): value(0), "x": value(1)}
		if !checkAppendYAML(t, obj) {
			t.Fatalf("appendYAML declined %q", obj)
		}
	}
}
