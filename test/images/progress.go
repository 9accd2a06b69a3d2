package images

import (
	"fmt"
	"sync"
	"time"
)

// ProgressEvery is how often a long build says it still runs. Lines are due at fixed times from
// the start, so one delayed by a loaded machine does not delay the next; with 20 s, there is a
// line at least every 30 s.
const ProgressEvery = 20 * time.Second

var progressEvery = ProgressEvery // shorter in tests

// Progress reports a build that may take minutes: what it builds, then every ProgressEvery how
// long it has taken, until Stop.
type Progress struct {
	logf  func(string, ...any)
	start time.Time

	mu         sync.Mutex
	what       string
	phase      string
	phaseStart time.Time
	announced  bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// StartProgress starts reporting the build what. With first 0 it says what at once; with first
// above 0 only once the build has run for first, so that a build the Go cache makes quick says
// nothing; with first below 0 never (the caller has said it), only how long it takes. A nil logf
// reports nothing.
func StartProgress(logf func(string, ...any), what string, first time.Duration) *Progress {
	p := &Progress{logf: logf, start: time.Now(), what: what, stop: make(chan struct{}), done: make(chan struct{})}
	p.phaseStart = p.start
	if logf == nil {
		close(p.done)
		return p
	}
	if first == 0 {
		p.announced = true
		logf("%s", what)
	}
	go p.run(first)
	return p
}

func (p *Progress) run(first time.Duration) {
	defer close(p.done)
	var firstC <-chan time.Time
	if first > 0 {
		t := time.NewTimer(first)
		defer t.Stop()
		firstC = t.C
	}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-firstC:
			p.mu.Lock()
			if !p.announced {
				p.announced = true
				p.logf("%s", p.label())
			}
			p.mu.Unlock()
		case now := <-tick.C:
			p.mu.Lock()
			if p.announced || first < 0 || now.Sub(p.start) >= first {
				p.announced = true
				p.logf("%s … %s", p.label(), p.elapsed(now))
			}
			p.mu.Unlock()
		}
	}
}

// Phase names the part of the build that runs now; the next lines give its time and the total.
func (p *Progress) Phase(phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.phaseStart = phase, time.Now()
}

// Stop ends the reports; no line comes after it returns. It may be called more than once.
func (p *Progress) Stop() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

func (p *Progress) label() string {
	if p.phase == "" {
		return p.what
	}
	return p.what + ": " + p.phase
}

func (p *Progress) elapsed(now time.Time) string {
	total := now.Sub(p.start).Round(time.Second)
	if p.phase == "" {
		return total.String()
	}
	return fmt.Sprintf("%s (total %s)", now.Sub(p.phaseStart).Round(time.Second), total)
}
