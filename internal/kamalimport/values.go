package kamalimport

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// str is a YAML scalar as Kamal reads it into a command line.
func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	default:
		return fmt.Sprint(v)
	}
}

// strs is a YAML scalar or list of scalars.
func strs(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			out = append(out, str(e))
		}
		return out
	default:
		return []string{str(v)}
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// withLabels adds labels to dst, making it when needed.
func withLabels(dst, labels map[string]string) map[string]string {
	for k, v := range labels {
		if dst == nil {
			dst = map[string]string{}
		}
		dst[k] = v
	}
	return dst
}

// seconds is Kamal's number of seconds as a duration.
func seconds(v any) (*metav1.Duration, error) {
	f, err := strconv.ParseFloat(str(v), 64)
	if err != nil || f < 0 {
		return nil, fmt.Errorf("%q is not a number of seconds", str(v))
	}
	return &metav1.Duration{Duration: time.Duration(f * float64(time.Second))}, nil
}

func boolOf(v any) (bool, error) {
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		return strconv.ParseBool(v)
	}
	return false, fmt.Errorf("%q is not true or false", str(v))
}

func ptr[T any](v T) *T { return &v }

// bytesQuantity is a byte count (40_000_000) or Docker's size ("512m", binary units).
func bytesQuantity(v any) (*resource.Quantity, error) {
	s := strings.ToLower(strings.TrimSpace(str(v)))
	m := regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)([bkmgt]?)b?$`).FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("%q is not a size", str(v))
	}
	suffix := map[string]string{"": "", "b": "", "k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti"}[m[2]]
	q, err := resource.ParseQuantity(m[1] + suffix)
	if err != nil {
		return nil, err
	}
	return &q, nil
}

func intOrPercent(v any) (*intstr.IntOrString, error) {
	s := strings.TrimSpace(str(v))
	if n, err := strconv.Atoi(s); err == nil {
		return ptr(intstr.FromInt32(int32(n))), nil
	}
	if strings.HasSuffix(s, "%") {
		return ptr(intstr.FromString(s)), nil
	}
	return nil, fmt.Errorf("%q is neither a number nor a percentage", s)
}

var nonLabel = regexp.MustCompile(`[^a-z0-9]+`)

// dnsLabel makes s a DNS label: lowercase letters, digits and '-', at most max characters,
// long names shortened with a hash so that different names stay different.
func dnsLabel(s string, max int) string {
	l := strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if l == "" {
		l = "x"
	}
	if len(l) > max {
		sum := sha256.Sum256([]byte(s))
		l = strings.TrimRight(l[:max-9], "-") + "-" + hex.EncodeToString(sum[:])[:8]
	}
	return l
}

// shellWords splits a command as a POSIX shell would when it only has words and quotes; a
// command with anything else (variables, pipes, redirections, globs, ;, &&) runs under sh -c,
// as it did on Kamal's command line.
func shellWords(cmd string) []string {
	if strings.ContainsAny(cmd, "$`|&;<>*?()[]{}~!#\n") {
		return []string{"sh", "-c", cmd}
	}
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(cmd[i+1:], '\'')
			if j < 0 {
				return []string{"sh", "-c", cmd}
			}
			cur.WriteString(cmd[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(cmd) && cmd[j] != '"'; j++ {
				if cmd[j] == '\\' && j+1 < len(cmd) {
					j++
				}
				cur.WriteByte(cmd[j])
			}
			if j >= len(cmd) {
				return []string{"sh", "-c", cmd}
			}
			i = j
			inWord = true
		case c == '\\' && i+1 < len(cmd):
			i++
			cur.WriteByte(cmd[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
