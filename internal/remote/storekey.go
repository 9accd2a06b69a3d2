package remote

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// StoreKey is the ConfigMap key under which the host key of address:port is kept (the known-hosts
// store of hosts trusted on first use). ConfigMap keys allow only [-._a-zA-Z0-9], so the key is
// the address in canonical form (lower case; an IP address as netip prints it), with an IPv6
// address's colons written as '_', then '_' and the port: "10.0.0.5_22", "web-1.example.com_22",
// "2001_db8__1_2222". Different address:port pairs never share a key: the port is what follows
// the last '_', and '_' appears in the address part only where a colon was.
func StoreKey(address string, port int) (string, error) {
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("port %d out of range", port)
	}
	a := strings.ToLower(strings.TrimSuffix(strings.Trim(address, "[]"), "."))
	if ip, err := netip.ParseAddr(a); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("address %q: zoned IPv6 addresses are not supported", address)
		}
		a = ip.Unmap().String()
	}
	if a == "" {
		return "", fmt.Errorf("empty address")
	}
	var b strings.Builder
	for _, c := range a {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.':
			b.WriteRune(c)
		case c == ':':
			b.WriteByte('_')
		default:
			return "", fmt.Errorf("address %q: %q is neither in a host name nor in an IP address", address, c)
		}
	}
	b.WriteByte('_')
	b.WriteString(strconv.Itoa(port))
	if b.Len() > 253 {
		return "", fmt.Errorf("address %q is too long", address)
	}
	return b.String(), nil
}
