package pkgspec

// ParamType is the type of a configuration parameter.
type ParamType string

// Parameter types.
const (
	TypeString   ParamType = "string"
	TypeInt      ParamType = "int"
	TypeBool     ParamType = "bool"
	TypeEnum     ParamType = "enum"
	TypePassword ParamType = "password"
	TypeDomain   ParamType = "domain"
	TypeSize     ParamType = "size"     // a Kubernetes quantity such as 10Gi
	TypeDuration ParamType = "duration" // a Go duration such as 30s or 1h30m
)

// ParamTypes lists every parameter type, in documentation order.
var ParamTypes = []ParamType{TypeString, TypeInt, TypeBool, TypeEnum, TypePassword, TypeDomain, TypeSize, TypeDuration}

func (t ParamType) String() string { return string(t) }

func (t ParamType) known() bool {
	for _, k := range ParamTypes {
		if k == t {
			return true
		}
	}
	return false
}

// Param is one typed configuration parameter.
type Param struct {
	Name        string    `yaml:"name" json:"name"`
	Type        ParamType `yaml:"type" json:"type"`
	Description string    `yaml:"description,omitempty" json:"description,omitempty"`
	Default     any       `yaml:"default,omitempty" json:"default,omitempty"`
	Required    bool      `yaml:"required,omitempty" json:"required,omitempty"`
	// Pattern is a regular expression a string, password or domain must match.
	Pattern string `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	// Min and Max bound an int (value), a size or duration (amount), or a
	// string or password (length).
	Min any `yaml:"min,omitempty" json:"min,omitempty"`
	Max any `yaml:"max,omitempty" json:"max,omitempty"`
	// Values are the choices of an enum.
	Values []string `yaml:"values,omitempty" json:"values,omitempty"`
	// Secret values are stored encrypted and never printed; passwords always are.
	Secret bool `yaml:"secret,omitempty" json:"secret,omitempty"`
	// Generate makes berth generate the value at install; it stays stable afterwards.
	Generate *Generate `yaml:"generate,omitempty" json:"generate,omitempty"`
	// When is a CEL condition over the configuration (self); the parameter is
	// asked for, and required, only while it holds.
	When string `yaml:"when,omitempty" json:"when,omitempty"`
}

// IsSecret reports whether p's value must be stored encrypted and never shown.
func (p Param) IsSecret() bool { return p.Secret || p.Type == TypePassword }

// Generate describes a generated value.
type Generate struct {
	Length  int     `yaml:"length" json:"length"`
	Charset Charset `yaml:"charset,omitempty" json:"charset,omitempty"`
}

// Charset is the alphabet of a generated value.
type Charset string

// Charsets.
const (
	Alphanumeric Charset = "alphanumeric"
	Hex          Charset = "hex"
)

func (c Charset) alphabet() string {
	switch c {
	case Hex:
		return "0123456789abcdef"
	default:
		return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	}
}

// Param returns the parameter called name.
func (p *Package) Param(name string) (Param, bool) {
	for _, q := range p.Config {
		if q.Name == name {
			return q, true
		}
	}
	return Param{}, false
}
