package kamalproxy

import (
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ACME HTTP-01 challenge answers: the controller runs the ACME client and puts each answer on
// the proxy of every host of the app (/kamal/challenges/<token>), so validation succeeds
// whichever host the CA reaches. The router answers GET /.well-known/acme-challenge/<token> for
// the answer's hosts before any route is looked up, whichever route owns the host and whether or
// not it redirects to HTTPS; a token it does not hold is routed as any other request.
//
// Answers are kept in memory only: one lives for the seconds of a validation, and a proxy
// restarted during one fails that validation, which the controller's order retries anyway (a
// saved answer would outlive its order, and a restart is no moment to serve it). An answer
// the controller never deletes expires after ChallengeTTL, and the table holds at most
// maxChallenges.

// ChallengePathPrefix is where ACME HTTP-01 challenges are asked for.
const ChallengePathPrefix = "/.well-known/acme-challenge/"

// ChallengeTTL is how long an answer stays without being put again.
const ChallengeTTL = time.Hour

const maxChallenges = 1000

// ErrTooManyChallenges is a challenge refused because the table is full (503).
var ErrTooManyChallenges = errors.New("too many ACME challenges pending")

var (
	tokenRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)
	keyAuthRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}\.[A-Za-z0-9_-]{1,256}$`)
)

// Challenge is the answer to one ACME HTTP-01 challenge.
type Challenge struct {
	// KeyAuthorization is "<token>.<account key thumbprint>", the answer's body.
	KeyAuthorization string `json:"keyAuthorization"`
	// Hosts are the names whose requests get the answer.
	Hosts []string `json:"hosts"`
}

type challenge struct {
	keyAuth string
	hosts   map[string]bool
	expires time.Time
}

// Challenges holds the pending challenge answers by token.
type Challenges struct {
	mu     sync.RWMutex
	tokens map[string]challenge
	now    func() time.Time
}

// NewChallenges returns an empty table.
func NewChallenges() *Challenges {
	return &Challenges{tokens: map[string]challenge{}, now: time.Now}
}

// Put adds or replaces the answer for token.
func (c *Challenges) Put(token string, ch Challenge) error {
	if !tokenRE.MatchString(token) {
		return invalid("challenge token %q is not base64url", token)
	}
	if !keyAuthRE.MatchString(ch.KeyAuthorization) || !strings.HasPrefix(ch.KeyAuthorization, token+".") {
		return invalid("the key authorization must be \"<token>.<thumbprint>\" for token %s", token)
	}
	if len(ch.Hosts) == 0 || len(ch.Hosts) > maxHosts {
		return invalid("a challenge needs 1 to %d hosts", maxHosts)
	}
	hosts := map[string]bool{}
	for _, h := range ch.Hosts {
		if len(h) > maxHostLen || strings.HasPrefix(h, "*.") || !(hostRE.MatchString(h) || net.ParseIP(strings.Trim(h, "[]")) != nil) {
			return invalid("challenge host %q is not a host name or an IP address (HTTP-01 has no wildcards)", h)
		}
		hosts[hostKey(h)] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.tokens[token]; !ok && len(c.tokens) >= maxChallenges {
		for t, ch := range c.tokens {
			if now.After(ch.expires) {
				delete(c.tokens, t)
			}
		}
		if len(c.tokens) >= maxChallenges {
			return ErrTooManyChallenges
		}
	}
	c.tokens[token] = challenge{keyAuth: ch.KeyAuthorization, hosts: hosts, expires: now.Add(ChallengeTTL)}
	return nil
}

// Delete removes the answer for token; a missing one is no error.
func (c *Challenges) Delete(token string) error {
	if !tokenRE.MatchString(token) {
		return invalid("challenge token %q is not base64url", token)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tokens, token)
	return nil
}

// Answer returns the key authorization for token asked with Host host (as sent).
func (c *Challenges) Answer(token, host string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ch, ok := c.tokens[token]
	if !ok || !ch.hosts[requestHost(host)] || c.now().After(ch.expires) {
		return "", false
	}
	return ch.keyAuth, true
}
