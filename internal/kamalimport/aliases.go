package kamalimport

import (
	"strings"
)

// aliases reports each alias as the kubectl kamal command that does the same, when there is one.
func (im *importer) aliases(v any) {
	m, _ := v.(map[string]any)
	for _, name := range sortedKeys(m) {
		cmds := aliasCommands(im.service, im.primary, str(m[name]))
		if len(cmds) == 0 {
			im.warn("aliases."+name, "not mapped: `kamal "+str(m[name])+"` has no kubectl kamal equivalent")
			continue
		}
		im.warn("aliases."+name, "not mapped (CLI shortcut); run "+strings.Join(cmds, " or "))
		im.aliasLines = append(im.aliasLines, "  "+name+": "+strings.Join(cmds, "  or  "))
	}
}

// aliasCommands translates a Kamal command line (without "kamal") to kubectl kamal commands.
func aliasCommands(service, primary, line string) []string {
	words := shellWords(line)
	if len(words) >= 3 && words[0] == "sh" && words[1] == "-c" {
		return nil // not a plain command line
	}
	if len(words) == 0 {
		return nil
	}
	target := service
	if words[0] == "accessory" && len(words) >= 3 {
		target = "accessory/" + dnsLabel(service+"-"+words[2], 63)
		words = append([]string{"app", words[1]}, words[3:]...)
	}
	if words[0] == "app" && len(words) >= 2 {
		words = append([]string{words[1]}, words[2:]...)
	}
	k := "kubectl kamal "
	switch words[0] {
	case "logs":
		return []string{k + "logs " + target}
	case "details", "containers":
		return []string{k + "status " + target}
	case "boot":
		return []string{k + "restart " + target}
	case "rollback":
		if len(words) > 1 {
			return []string{k + "rollback " + target + " " + words[len(words)-1]}
		}
		return []string{k + "rollback " + target}
	case "exec":
	default:
		return nil
	}
	var flags, cmd []string
	interactive, reuse := false, false
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-i" || w == "--interactive":
			interactive = true
		case w == "--reuse":
			reuse = true
		case w == "-p" || w == "--primary":
			flags = append(flags, "--role", primary)
		case (w == "-r" || w == "--roles") && i+1 < len(words):
			i++
			flags = append(flags, "--role", words[i])
		case strings.HasPrefix(w, "--roles="):
			flags = append(flags, "--role", strings.TrimPrefix(w, "--roles="))
		case (w == "-h" || w == "--hosts") && i+1 < len(words):
			i++
			flags = append(flags, "--server", dnsLabel(words[i], 63))
		case (w == "-d" || w == "--destination") && i+1 < len(words):
			i++ // a namespace here
		case w == "-q" || w == "--quiet" || w == "-v" || w == "--verbose":
		case strings.HasPrefix(w, "-") && len(cmd) == 0:
			// an option kubectl kamal exec has no equivalent for
		default:
			cmd = append(cmd, w)
		}
	}
	if len(cmd) == 1 && strings.ContainsAny(cmd[0], " \t") {
		cmd = shellWords(cmd[0])
	}
	var out []string
	if interactive && reuse && len(flags) == 0 && len(cmd) == 1 && (cmd[0] == "bash" || cmd[0] == "sh") && !strings.HasPrefix(target, "accessory/") {
		out = append(out, k+"shell "+target)
	}
	e := k + "exec " + target
	if interactive {
		e += " -it"
	}
	if reuse {
		e += " --reuse"
	}
	if len(flags) > 0 {
		e += " " + strings.Join(flags, " ")
	}
	if len(cmd) > 0 {
		e += " -- " + strings.Join(cmd, " ")
	}
	return append(out, e)
}
