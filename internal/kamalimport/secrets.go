package kamalimport

import (
	"fmt"
	"regexp"
	"strings"
)

// Placeholder is the value of every secret import has no literal value for.
const Placeholder = "REPLACE_ME"

var varRef = regexp.MustCompile(`\$[A-Za-z_]`)

var dotenvLine = regexp.MustCompile(`^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$`)

// parseSecrets reads a dotenv file (Kamal's .kamal/secrets) for literal values only: a value
// that needs a shell (command substitution) or other variables (expansion) is never evaluated;
// its key is reported and left out, so it stays a placeholder.
func parseSecrets(file, text string, warn func(key, msg string)) map[string]string {
	values := map[string]string{}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for n := 0; n < len(lines); n++ {
		l := lines[n]
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		m := dotenvLine.FindStringSubmatch(l)
		where := fmt.Sprintf("%s:%d", file, n+1)
		if m == nil {
			warn(where, "not a KEY=value line; ignored")
			continue
		}
		key, raw := m[1], m[2]
		var value string
		quote := byte(0)
		if raw != "" && (raw[0] == '"' || raw[0] == '\'') {
			quote = raw[0]
			body := raw[1:]
			// A quoted value may span lines (a PEM key).
			for !closes(body, quote) && n+1 < len(lines) {
				n++
				body += "\n" + lines[n]
			}
			end := closing(body, quote)
			if end < 0 {
				warn(where, fmt.Sprintf("%s: the quote is never closed; the value stays %s", key, Placeholder))
				continue
			}
			value = body[:end]
		} else {
			value = raw
			if i := strings.Index(value, " #"); i >= 0 {
				value = value[:i]
			}
			value = strings.TrimSpace(value)
		}
		if quote != '\'' {
			if why := needsShell(strings.ReplaceAll(value, `\$`, "")); why != "" {
				warn(where, fmt.Sprintf("%s: %s is not run; the value stays %s: fill it in yourself", key, why, Placeholder))
				delete(values, key)
				continue
			}
		}
		if quote == '"' {
			value = unescape(value)
		}
		values[key] = value
	}
	return values
}

func closes(body string, quote byte) bool { return closing(body, quote) >= 0 }

// closing is the index of the unescaped closing quote in body, or -1.
func closing(body string, quote byte) int {
	for i := 0; i < len(body); i++ {
		switch {
		case body[i] == '\\' && quote == '"':
			i++
		case body[i] == quote:
			return i
		}
	}
	return -1
}

func unescape(s string) string {
	r := strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`, `\$`, "$")
	return r.Replace(s)
}

// needsShell says why dotenv (as Kamal loads it) would run or expand something in value.
func needsShell(value string) string {
	switch {
	case strings.Contains(value, "$("):
		return "command substitution $(...)"
	case strings.Contains(value, "`"):
		return "command substitution `...`"
	case strings.Contains(value, "${"):
		return "variable expansion ${...}"
	case varRef.MatchString(value):
		return "variable expansion $NAME"
	}
	return ""
}
