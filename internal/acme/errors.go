package acme

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	xacme "golang.org/x/crypto/acme"
)

// maxProblem bounds the text of a problem, so it fits a status condition's message.
const maxProblem = 1024

// Error is a failed step of an order with the CA's reason, on one line, fit for a status
// condition's message. It never holds key material.
type Error struct {
	// Op is the step: "creating the order", "validating www.example.com", ...
	Op string
	// Problem is the CA's problem ("connection: 192.0.2.1: Fetching http://...: connection
	// refused"), or the local reason.
	Problem string
	// RetryAfter is how long the CA asked to wait (rate limits), or 0.
	RetryAfter time.Duration
	// Err is the error from the ACME library, if any.
	Err error
}

func (e *Error) Error() string { return e.Op + ": " + e.Problem }

func (e *Error) Unwrap() error { return e.Err }

// wrap makes err an *Error for op, with its ACME problem text.
func wrap(op string, err error) error {
	e := &Error{Op: op, Problem: Problem(err), Err: err}
	if d, ok := xacme.RateLimit(err); ok {
		e.RetryAfter = d
	}
	return e
}

// Problem is err as one line of the CA's words: the problem type (without the ACME URN prefix)
// and detail of ACME errors, of the challenges of a failed authorization, and of a failed order.
func Problem(err error) string {
	var s string
	var ae *xacme.Error
	var ze *xacme.AuthorizationError
	var oe *xacme.OrderError
	switch {
	case errors.As(err, &ze):
		var parts []string
		for _, e := range ze.Errors {
			// The authorization's own problem often repeats its challenge's.
			if p := Problem(e); !slices.Contains(parts, p) {
				parts = append(parts, p)
			}
		}
		if len(parts) == 0 {
			parts = append(parts, "authorization invalid")
		}
		s = strings.Join(parts, "; ")
	case errors.As(err, &oe):
		s = "order " + oe.Status
		if oe.Problem != nil {
			s += ": " + problem(oe.Problem)
		}
	case errors.As(err, &ae):
		s = problem(ae)
	case err == nil:
		return ""
	default:
		s = err.Error()
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxProblem {
		s = s[:maxProblem-3] + "..."
	}
	return s
}

func problem(e *xacme.Error) string {
	s := shortType(e.ProblemType)
	if e.Detail != "" {
		if s != "" {
			s += ": "
		}
		s += e.Detail
	}
	if s == "" {
		s = fmt.Sprintf("HTTP %d", e.StatusCode)
	}
	for _, sp := range e.Subproblems {
		s += "; "
		if sp.Identifier != nil {
			s += sp.Identifier.Value + ": "
		}
		s += shortType(sp.Type) + ": " + sp.Detail
	}
	return s
}

func shortType(t string) string {
	for _, p := range []string{"urn:ietf:params:acme:error:", "urn:acme:error:"} {
		t = strings.TrimPrefix(t, p)
	}
	return t
}
