package acme

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"
)

func TestProblem(t *testing.T) {
	refused := &xacme.Error{StatusCode: 400, ProblemType: "urn:ietf:params:acme:error:connection",
		Detail: "127.0.0.2: Connecting to http://a.example.com:5002/.well-known/acme-challenge/x:\nconnection refused"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"ACME problem", refused, "connection: 127.0.0.2: Connecting to http://a.example.com:5002/.well-known/acme-challenge/x: connection refused"},
		{"authorization", fmt.Errorf("wrapped: %w", &xacme.AuthorizationError{Identifier: "a.example.com", Errors: []error{refused}}),
			"connection: 127.0.0.2: Connecting to"},
		{"authorization with a repeated problem", &xacme.AuthorizationError{Errors: []error{refused, refused}},
			"connection: 127.0.0.2: Connecting to http://a.example.com:5002/.well-known/acme-challenge/x: connection refused"},
		{"authorization without problems", &xacme.AuthorizationError{Identifier: "a.example.com"}, "authorization invalid"},
		{"order", &xacme.OrderError{Status: "invalid", Problem: &xacme.Error{ProblemType: "urn:ietf:params:acme:error:unauthorized", Detail: "no"}},
			"order invalid: unauthorized: no"},
		{"subproblems", &xacme.Error{ProblemType: "urn:ietf:params:acme:error:rejectedIdentifier", Detail: "some names",
			Subproblems: []xacme.Subproblem{{Type: "urn:ietf:params:acme:error:rejectedIdentifier", Detail: "blocked", Identifier: &xacme.AuthzID{Value: "bad.example"}}}},
			"rejectedIdentifier: some names; bad.example: rejectedIdentifier: blocked"},
		{"other", errors.New("dial tcp: i/o timeout"), "dial tcp: i/o timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Problem(tc.err)
			if !strings.HasPrefix(got, tc.want) || strings.Count(got, "connection refused") > 1 || strings.Contains(got, "\n") {
				t.Errorf("Problem = %q, want it to start with %q, on one line", got, tc.want)
			}
		})
	}
	if got := Problem(errors.New(strings.Repeat("x", 5000))); len(got) != maxProblem {
		t.Errorf("a long problem has %d characters", len(got))
	}
}

func TestWrap(t *testing.T) {
	limited := &xacme.Error{StatusCode: 429, ProblemType: "urn:ietf:params:acme:error:rateLimited", Detail: "too many certificates",
		Header: http.Header{"Retry-After": []string{"3600"}}}
	err := wrap("creating the order", limited)
	var e *Error
	if !errors.As(err, &e) || e.RetryAfter != time.Hour {
		t.Fatalf("wrap = %#v", err)
	}
	if err.Error() != "creating the order: rateLimited: too many certificates" {
		t.Errorf("message %q", err.Error())
	}
	var ae *xacme.Error
	if !errors.As(err, &ae) {
		t.Error("the ACME error does not unwrap")
	}
}
