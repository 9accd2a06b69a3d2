package kamalimport

import (
	"fmt"
	"regexp"
	"strings"
)

// erbEnv matches the only ERB tags import evaluates: <%= ENV["X"] %>, <%= ENV.fetch("X") %> and
// <%= ENV.fetch("X", "default") %>. Anything else would be Ruby run on this machine.
var erbEnv = regexp.MustCompile(`^=\s*ENV(?:\[\s*(?:"([A-Za-z_][A-Za-z0-9_]*)"|'([A-Za-z_][A-Za-z0-9_]*)')\s*\]|\.fetch\(\s*(?:"([A-Za-z_][A-Za-z0-9_]*)"|'([A-Za-z_][A-Za-z0-9_]*)')\s*(?:,\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*)?\))\s*-?$`)

// renderERB replaces the ENV tags of a config file with values from getenv and refuses every
// other tag, naming the file and line.
func renderERB(file, text string, getenv func(string) (string, bool), warn func(key, msg string)) (string, error) {
	var b strings.Builder
	rest := text
	line := 1
	for {
		i := strings.Index(rest, "<%")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		line += strings.Count(rest[:i], "\n")
		j := strings.Index(rest[i:], "%>")
		if j < 0 {
			return "", fmt.Errorf("%s:%d: ERB tag is not closed with %%>", file, line)
		}
		tag := rest[i+2 : i+j]
		m := erbEnv.FindStringSubmatch(strings.TrimSpace(tag))
		if m == nil {
			return "", fmt.Errorf("%s:%d: ERB tag <%%%s%%> refused: import evaluates only <%%= ENV[\"NAME\"] %%> and <%%= ENV.fetch(\"NAME\") %%>; render the file yourself or replace the tag with its value", file, line, tag)
		}
		switch name := m[1] + m[2]; {
		case name != "":
			v, ok := getenv(name)
			if !ok {
				warn(fmt.Sprintf("%s:%d", file, line), fmt.Sprintf("ENV[%q] is not set: it reads as empty, as in Ruby", name))
			}
			b.WriteString(v)
		default:
			name = m[3] + m[4]
			v, ok := getenv(name)
			if !ok {
				if !strings.Contains(tag, ",") {
					return "", fmt.Errorf("%s:%d: ENV.fetch(%q): %s is not set", file, line, name, name)
				}
				v = m[5] + m[6]
			}
			b.WriteString(v)
		}
		line += strings.Count(tag, "\n")
		rest = rest[i+j+2:]
		// trim mode "-": a tag closed with -%> swallows the newline after it.
		if strings.HasSuffix(strings.TrimSpace(tag), "-") && strings.HasPrefix(rest, "\n") {
			rest = rest[1:]
			line++
		}
	}
}
