package render

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// appendYAML appends obj as YAML, byte for byte as yaml.v2's Marshal writes
// the value yamlValue makes of it (the form sigs.k8s.io/yaml gives), and
// reports whether it could: objects of the types decoding gives, with
// strings of valid UTF-8 without Unicode line separators, are written here;
// the caller writes the others the slow way.
//
// It is yaml.v2's emitter (a port of libyaml) reduced to what an object
// needs: block mappings and sequences, empty ones in flow style, and
// scalars without tags or anchors. yaml.v2 keeps every event of a document
// in a queue that it never shortens, which made writing a chart's CRDs
// (megabytes of schema) the largest cost of berth template.
func appendYAML(dst []byte, obj map[string]any) ([]byte, bool) {
	e := emitter{out: dst, indent: -1, whitespace: true, indention: true}
	if !e.node(obj, false, false) {
		return dst, false
	}
	// The document's end (implicit, as yaml.v2 writes it).
	e.writeIndent()
	return e.out, true
}

// The emitter's settings: yaml.v2's defaults.
const (
	emitBestIndent = 2
	emitBestWidth  = 80
	// emitSimpleKeyMax is the length past which a key is written as a
	// complex key ("? key").
	emitSimpleKeyMax = 128
)

// scalarStyle is how a scalar is written.
type scalarStyle int

const (
	stylePlain scalarStyle = iota
	styleSingle
	styleDouble
	styleLiteral
)

// emitter holds the state yaml.v2's emitter keeps between writes; its
// methods are the functions of the same names in yaml.v2's emitterc.go.
type emitter struct {
	out        []byte
	column     int
	indent     int
	whitespace bool
	indention  bool
}

func (e *emitter) put(c byte) {
	e.out = append(e.out, c)
	e.column++
}

// putString writes s, which holds no line break; the column counts
// characters, not bytes.
func (e *emitter) putString(s string) {
	e.out = append(e.out, s...)
	for i := 0; i < len(s); i++ {
		if s[i]&0xc0 != 0x80 {
			e.column++
		}
	}
}

func (e *emitter) putBreak() {
	e.out = append(e.out, '\n')
	e.column = 0
}

func (e *emitter) writeIndent() {
	indent := max(e.indent, 0)
	if !e.indention || e.column > indent || (e.column == indent && !e.whitespace) {
		e.putBreak()
	}
	for e.column < indent {
		e.put(' ')
	}
	e.whitespace = true
	e.indention = true
}

func (e *emitter) writeIndicator(s string, needWhitespace, isWhitespace, isIndention bool) {
	if needWhitespace && !e.whitespace {
		e.put(' ')
	}
	e.putString(s)
	e.whitespace = isWhitespace
	e.indention = e.indention && isIndention
}

// increaseIndent returns the indentation of a node nested in the current one.
func (e *emitter) increaseIndent(flow, indentless bool) int {
	switch {
	case e.indent < 0 && flow:
		return emitBestIndent
	case e.indent < 0:
		return 0
	case indentless:
		return e.indent
	}
	return e.indent + emitBestIndent
}

// node writes v; mapping says it is a key or value of a mapping, simpleKey
// that it is a simple key. It returns false for what appendYAML leaves to
// the slow path.
func (e *emitter) node(v any, mapping, simpleKey bool) bool {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return e.scalar("null", stylePlain, simpleKey)
		}
		if len(v) == 0 {
			e.writeIndicator("{", true, true, false)
			e.writeIndicator("}", false, false, false)
			return true
		}
		return e.mapping(v)
	case []any:
		if v == nil {
			return e.scalar("null", stylePlain, simpleKey)
		}
		if len(v) == 0 {
			e.writeIndicator("[", true, true, false)
			e.writeIndicator("]", false, false, false)
			return true
		}
		return e.sequence(v, mapping)
	case string:
		return e.str(v, simpleKey)
	case bool:
		return e.scalar(strconv.FormatBool(v), stylePlain, simpleKey)
	case nil:
		return e.scalar("null", stylePlain, simpleKey)
	case int64:
		return e.scalar(strconv.FormatInt(v, 10), stylePlain, simpleKey)
	case int:
		return e.scalar(strconv.Itoa(v), stylePlain, simpleKey)
	case float64:
		switch {
		case math.IsInf(v, 0) || math.IsNaN(v):
			return false
		case v != math.Trunc(v):
			return e.scalar(strconv.FormatFloat(v, 'g', -1, 64), stylePlain, simpleKey)
		case math.Abs(v) < 1<<53:
			return e.scalar(strconv.FormatInt(int64(v), 10), stylePlain, simpleKey)
		}
		return false // see yamlValue
	}
	return false
}

func (e *emitter) mapping(m map[string]any) bool {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !emittable(k) {
			return false
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	saved := e.indent
	e.indent = e.increaseIndent(false, false)
	for _, k := range keys {
		e.writeIndent()
		if len(k) <= emitSimpleKeyMax && !strings.ContainsAny(k, "\n\r") {
			if !e.str(k, true) {
				return false
			}
			e.writeIndicator(":", false, false, false)
		} else {
			e.writeIndicator("?", true, false, true)
			if !e.str(k, false) {
				return false
			}
			e.writeIndent()
			e.writeIndicator(":", true, false, true)
		}
		if !e.node(m[k], true, false) {
			return false
		}
	}
	e.indent = saved
	return true
}

func (e *emitter) sequence(s []any, mapping bool) bool {
	saved := e.indent
	e.indent = e.increaseIndent(false, mapping && !e.indention)
	for _, v := range s {
		e.writeIndent()
		e.writeIndicator("-", true, false, true)
		if !e.node(v, false, false) {
			return false
		}
	}
	e.indent = saved
	return true
}

// str writes a string as yaml.v2's encoder asks its emitter to.
func (e *emitter) str(s string, simpleKey bool) bool {
	if !emittable(s) {
		return false
	}
	style := styleDouble
	switch {
	case strings.Contains(s, "\n"):
		style = styleLiteral
	case resolvesToString(s) && !isBase60Float(s):
		style = stylePlain
	}
	return e.scalar(s, style, simpleKey)
}

// scalar writes an emittable scalar in the style asked for or, where that
// style cannot hold it, the one yaml.v2 falls back to.
func (e *emitter) scalar(s string, style scalarStyle, simpleKey bool) bool {
	a := analyzeScalar(s)
	if simpleKey && a.multiline {
		style = styleDouble
	}
	if style == stylePlain && (!a.blockPlainAllowed || s == "" && simpleKey) {
		style = styleSingle
	}
	if style == styleSingle && !a.singleQuotedAllowed {
		style = styleDouble
	}
	if style == styleLiteral && (!a.blockAllowed || simpleKey) {
		style = styleDouble
	}
	saved := e.indent
	e.indent = e.increaseIndent(true, false)
	switch style {
	case stylePlain:
		e.writePlain(s, !simpleKey)
	case styleSingle:
		e.writeSingleQuoted(s, !simpleKey)
	case styleDouble:
		e.writeDoubleQuoted(s, !simpleKey)
	case styleLiteral:
		e.writeLiteral(s)
	}
	e.indent = saved
	return true
}

// scalarAnalysis is what yaml_emitter_analyze_scalar finds.
type scalarAnalysis struct {
	multiline, blockPlainAllowed, singleQuotedAllowed, blockAllowed bool
}

func analyzeScalar(s string) scalarAnalysis {
	if s == "" {
		return scalarAnalysis{blockPlainAllowed: true, singleQuotedAllowed: true}
	}
	var blockIndicators, lineBreaks, specialCharacters bool
	var leadingSpace, leadingBreak, trailingSpace, trailingBreak, breakSpace, spaceBreak bool
	var previousSpace, previousBreak bool
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		blockIndicators = true
	}
	precededByWhitespace := true
	for i, w := 0, 0; i < len(s); i += w {
		c := s[i]
		w = charWidth(c)
		followedByWhitespace := i+w >= len(s) || s[i+w] == ' ' || s[i+w] == '\t'
		if i == 0 {
			switch c {
			case '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
				blockIndicators = true
			case '?', ':', '-':
				if followedByWhitespace {
					blockIndicators = true
				}
			}
		} else {
			switch c {
			case ':':
				if followedByWhitespace {
					blockIndicators = true
				}
			case '#':
				if precededByWhitespace {
					blockIndicators = true
				}
			}
		}
		if !isPrintable(s, i) {
			specialCharacters = true
		}
		switch {
		case c == ' ':
			leadingSpace = leadingSpace || i == 0
			trailingSpace = trailingSpace || i+w == len(s)
			breakSpace = breakSpace || previousBreak
			previousSpace, previousBreak = true, false
		case c == '\n' || c == '\r':
			lineBreaks = true
			leadingBreak = leadingBreak || i == 0
			trailingBreak = trailingBreak || i+w == len(s)
			spaceBreak = spaceBreak || previousSpace
			previousSpace, previousBreak = false, true
		default:
			previousSpace, previousBreak = false, false
		}
		precededByWhitespace = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0
	}
	a := scalarAnalysis{multiline: lineBreaks, blockPlainAllowed: true, singleQuotedAllowed: true, blockAllowed: true}
	if leadingSpace || leadingBreak || trailingSpace || trailingBreak {
		a.blockPlainAllowed = false
	}
	if trailingSpace {
		a.blockAllowed = false
	}
	if breakSpace {
		a.blockPlainAllowed = false
		a.singleQuotedAllowed = false
	}
	if spaceBreak || specialCharacters {
		a.blockPlainAllowed = false
		a.singleQuotedAllowed = false
		a.blockAllowed = false
	}
	if lineBreaks || blockIndicators {
		a.blockPlainAllowed = false
	}
	return a
}

// writePlain writes a plain scalar, which holds no line break (the
// analysis forbids the style then), folding long lines at spaces.
func (e *emitter) writePlain(s string, allowBreaks bool) {
	if !e.whitespace {
		e.put(' ')
	}
	spaces := false
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			if allowBreaks && !spaces && e.column > emitBestWidth && !(i+1 < len(s) && s[i+1] == ' ') {
				e.writeIndent()
			} else {
				e.put(' ')
			}
			spaces = true
			i++
			continue
		}
		j := i + 1
		for j < len(s) && s[j] != ' ' {
			j++
		}
		e.putString(s[i:j])
		e.indention = false
		spaces = false
		i = j
	}
	e.whitespace = false
	e.indention = false
}

// writeSingleQuoted writes a single-quoted scalar, which holds no line
// break either: a string with one is written as a literal or double-quoted.
func (e *emitter) writeSingleQuoted(s string, allowBreaks bool) {
	e.writeIndicator("'", true, false, false)
	spaces := false
	for i, w := 0, 0; i < len(s); i += w {
		c := s[i]
		w = charWidth(c)
		if c == ' ' {
			if allowBreaks && !spaces && e.column > emitBestWidth && i > 0 && i < len(s)-1 && s[i+1] != ' ' {
				e.writeIndent()
			} else {
				e.put(' ')
			}
			spaces = true
			continue
		}
		if c == '\'' {
			e.put('\'')
		}
		e.putString(s[i : i+w])
		e.indention = false
		spaces = false
	}
	e.writeIndicator("'", false, false, false)
	e.whitespace = false
	e.indention = false
}

func (e *emitter) writeDoubleQuoted(s string, allowBreaks bool) {
	const hex = "0123456789ABCDEF"
	spaces := false
	e.writeIndicator(`"`, true, false, false)
	for i, w := 0, 0; i < len(s); i += w {
		c := s[i]
		w = charWidth(c)
		switch {
		case !isPrintable(s, i) || c == '\n' || c == '\r' || c == '"' || c == '\\':
			e.put('\\')
			r, _ := utf8.DecodeRuneInString(s[i:])
			switch r {
			case 0x00:
				e.put('0')
			case 0x07:
				e.put('a')
			case 0x08:
				e.put('b')
			case 0x09:
				e.put('t')
			case 0x0a:
				e.put('n')
			case 0x0b:
				e.put('v')
			case 0x0c:
				e.put('f')
			case 0x0d:
				e.put('r')
			case 0x1b:
				e.put('e')
			case '"', '\\':
				e.put(c)
			case 0x85:
				e.put('N')
			case 0xa0:
				e.put('_')
			default:
				digits := 2
				switch {
				case r <= 0xff:
					e.put('x')
				case r <= 0xffff:
					e.put('u')
					digits = 4
				default:
					e.put('U')
					digits = 8
				}
				for k := (digits - 1) * 4; k >= 0; k -= 4 {
					e.put(hex[(r>>k)&0x0f])
				}
			}
			spaces = false
		case c == ' ':
			if allowBreaks && !spaces && e.column > emitBestWidth && i > 0 && i < len(s)-1 {
				e.writeIndent()
				if s[i+1] == ' ' {
					e.put('\\')
				}
			} else {
				e.put(' ')
			}
			spaces = true
		default:
			e.putString(s[i : i+w])
			spaces = false
		}
	}
	e.writeIndicator(`"`, false, false, false)
	e.whitespace = false
	e.indention = false
}

// writeLiteral writes a literal block scalar; the analysis allows it only
// for printable text whose breaks are all '\n'.
func (e *emitter) writeLiteral(s string) {
	e.writeIndicator("|", true, false, false)
	if s[0] == ' ' || s[0] == '\n' {
		e.writeIndicator(strconv.Itoa(emitBestIndent), false, false, false)
	}
	switch n := len(s); {
	case s[n-1] != '\n':
		e.writeIndicator("-", false, false, false)
	case n == 1 || s[n-2] == '\n':
		e.writeIndicator("+", false, false, false)
	}
	e.putBreak()
	e.indention = true
	e.whitespace = true
	breaks := true
	for i := 0; i < len(s); {
		if s[i] == '\n' {
			e.putBreak()
			e.indention = true
			breaks = true
			i++
			continue
		}
		if breaks {
			e.writeIndent()
		}
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			j = len(s)
		} else {
			j += i
		}
		e.putString(s[i:j])
		e.indention = false
		breaks = false
		i = j
	}
}

// emittable says whether appendYAML writes s: valid UTF-8 without a
// byte-order mark at its start (yaml.v2 then escapes every character) and
// without the line breaks of Unicode (NEL, LS, PS), which yaml.v2 writes
// its own way.
func emittable(s string) bool {
	if isASCII(s) {
		return true
	}
	return utf8.ValidString(s) && !strings.HasPrefix(s, "\ufeff") && !strings.ContainsAny(s, "\u0085\u2028\u2029")
}

// charWidth is the length of the UTF-8 character that starts with c.
func charWidth(c byte) int {
	switch {
	case c&0x80 == 0:
		return 1
	case c&0xe0 == 0xc0:
		return 2
	case c&0xf0 == 0xe0:
		return 3
	}
	return 4
}

// isPrintable is yaml.v2's is_printable: whether the character at s[i]
// is written as it is.
func isPrintable(s string, i int) bool {
	c := s[i]
	switch {
	case c == 0x0a || c >= 0x20 && c <= 0x7e:
		return true
	case c == 0xc2:
		return s[i+1] >= 0xa0
	case c > 0xc2 && c < 0xed:
		return true
	case c == 0xed:
		return s[i+1] < 0xa0
	case c == 0xee:
		return true
	case c == 0xef:
		return !(s[i+1] == 0xbb && s[i+2] == 0xbf) && !(s[i+1] == 0xbf && (s[i+2] == 0xbe || s[i+2] == 0xbf))
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// keyLess orders keys as yaml.v2 does: letters by code, runs of digits by
// their number, letters after other characters.
func keyLess(a, b string) bool {
	if isASCII(a) && isASCII(b) {
		return keyLessOf([]byte(a), []byte(b), func(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' })
	}
	return keyLessOf([]rune(a), []rune(b), unicode.IsLetter)
}

func keyLessOf[C byte | rune](a, b []C, isLetter func(C) bool) bool {
	// yaml.v2 takes unicode.IsDigit for digits but adds their values as if
	// they were ASCII.
	isDigit := func(c C) bool { return unicode.IsDigit(rune(c)) }
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] == b[i] {
			continue
		}
		al, bl := isLetter(a[i]), isLetter(b[i])
		if al && bl {
			return a[i] < b[i]
		}
		if al || bl {
			return bl
		}
		var ai, bi int
		var an, bn int64
		if a[i] == '0' || b[i] == '0' {
			for j := i - 1; j >= 0 && isDigit(a[j]); j-- {
				if a[j] != '0' {
					an, bn = 1, 1
					break
				}
			}
		}
		for ai = i; ai < len(a) && isDigit(a[ai]); ai++ {
			an = an*10 + int64(a[ai]-'0')
		}
		for bi = i; bi < len(b) && isDigit(b[bi]); bi++ {
			bn = bn*10 + int64(b[bi]-'0')
		}
		if an != bn {
			return an < bn
		}
		if ai != bi {
			return ai < bi
		}
		return a[i] < b[i]
	}
	return len(a) < len(b)
}

// resolvesToString says whether yaml.v2 reads s, written plain, as a
// string (its resolve function with no tag).
func resolvesToString(s string) bool {
	if s == "" {
		return false // null
	}
	switch c := s[0]; {
	case c == '.':
		if yamlSpecial[s] {
			return false
		}
		_, err := strconv.ParseFloat(s, 64)
		return err != nil
	case strings.IndexByte("yYnNtTfFoO~", c) >= 0:
		return !yamlSpecial[s]
	case c == '+' || c == '-' || '0' <= c && c <= '9':
		return !yamlSpecial[s] && !numberOrTimestamp(s)
	}
	return true
}

// yamlSpecial holds the plain scalars yaml.v2 reads as booleans, nulls and
// special floats.
var yamlSpecial = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Fields(`y Y yes Yes YES true True TRUE on On ON
		n N no No NO false False FALSE off Off OFF ~ null Null NULL
		.nan .NaN .NAN .inf .Inf .INF +.inf +.Inf +.INF -.inf -.Inf -.INF`) {
		m[s] = true
	}
	return m
}()

var yamlStyleFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// numberOrTimestamp is the part of yaml.v2's resolve for scalars that
// start with a sign or a digit.
func numberOrTimestamp(s string) bool {
	if isTimestamp(s) {
		return true
	}
	plain := strings.ReplaceAll(s, "_", "")
	if _, err := strconv.ParseInt(plain, 0, 64); err == nil {
		return true
	}
	if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
		return true
	}
	if yamlStyleFloat.MatchString(plain) {
		if _, err := strconv.ParseFloat(plain, 64); err == nil {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(plain, "0b"); ok {
		if _, err := strconv.ParseInt(rest, 2, 64); err == nil {
			return true
		}
		if _, err := strconv.ParseUint(rest, 2, 64); err == nil {
			return true
		}
	} else if rest, ok := strings.CutPrefix(plain, "-0b"); ok {
		if _, err := strconv.ParseInt("-"+rest, 2, 64); err == nil {
			return true
		}
	}
	return false
}

// isTimestamp is yaml.v2's parseTimestamp.
func isTimestamp(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			break
		}
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, format := range []string{"2006-1-2T15:4:5.999999999Z07:00", "2006-1-2t15:4:5.999999999Z07:00", "2006-1-2 15:4:5.999999999", "2006-1-2"} {
		if _, err := time.Parse(format, s); err == nil {
			return true
		}
	}
	return false
}

var base60Float = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)

// isBase60Float is yaml.v2's: such strings are quoted for old parsers.
func isBase60Float(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	if !(c == '+' || c == '-' || c >= '0' && c <= '9') || strings.IndexByte(s, ':') < 0 {
		return false
	}
	return base60Float.MatchString(s)
}
