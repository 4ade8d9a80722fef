package server

import (
	"path"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// maxNameInError caps how much of a client's string (a model or app
// name, a role) an error message repeats; maxErrorText caps the whole
// message of an error that carries text from elsewhere (a loader or
// backend error, the app's stderr).
const (
	maxNameInError = 96
	maxErrorText   = 2 << 10
)

// quote returns s quoted for an error message, cut to maxNameInError
// bytes (at a rune boundary) with its full length noted when cut.
func quote(s string) string {
	if len(s) <= maxNameInError {
		return strconv.Quote(s)
	}
	cut := maxNameInError
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

var (
	// absPathRE finds absolute file paths: a "/" that starts the text
	// or follows a space, quote, bracket, "=" or ",", up to the next
	// such delimiter.
	absPathRE = regexp.MustCompile(`(?:^|[\s"'(\[<=,])/[^\s"'()\[\]<>,]*`)
	// pidRE finds process ids: "(pid 123)", "pid 123", "pid=123".
	pidRE = regexp.MustCompile(`\s?\(pid[ =]\d+\)|\bpid[ =]\d+`)
)

// redact makes text from elsewhere fit for a client: absolute paths are
// cut to their last element, process ids removed, and the text capped
// at maxErrorText bytes. Clients learn what failed, not where the
// server keeps its files or which processes it runs.
func redact(s string) string {
	s = pidRE.ReplaceAllStringFunc(s, func(m string) string {
		if m[0] == ' ' || m[0] == '(' {
			return ""
		}
		return "pid"
	})
	s = absPathRE.ReplaceAllStringFunc(s, func(m string) string {
		lead := ""
		if m[0] != '/' {
			lead, m = m[:1], m[1:]
		}
		trail := ""
		for len(m) > 1 && (m[len(m)-1] == ':' || m[len(m)-1] == '.') {
			trail = m[len(m)-1:] + trail
			m = m[:len(m)-1]
		}
		return lead + path.Base(m) + trail
	})
	if len(s) > maxErrorText {
		cut := maxErrorText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
