package pkgspec

import (
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// TemplateFuncs returns the functions of values and output templates: Sprig's,
// as in Helm, without those that read the environment or the clock or draw
// random numbers, so rendering stays a pure function of its inputs.
func TemplateFuncs() template.FuncMap {
	f := sprig.TxtFuncMap()
	for _, impure := range []string{
		"env", "expandenv", "now", "date", "dateInZone", "date_in_zone", "ago", "unixEpoch",
		"randAlpha", "randAlphaNum", "randAscii", "randNumeric", "randBytes", "randInt",
		"uuidv4", "genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert",
		"genSelfSignedCertWithKey", "genSignedCert", "genSignedCertWithKey", "getHostByName",
		"htpasswd", "bcrypt", "shuffle",
	} {
		delete(f, impure)
	}
	return f
}
