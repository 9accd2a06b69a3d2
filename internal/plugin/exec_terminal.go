package plugin

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// terminal is the local end of a command: the plugin's streams, and what of them is a terminal.
type terminal struct {
	in          io.Reader
	out, errOut io.Writer
	inFd, outFd int
	inTerm      bool
	outTerm     bool
}

func localTerminal(s genericiooptions.IOStreams) *terminal {
	t := &terminal{in: s.In, out: s.Out, errOut: s.ErrOut, inFd: -1, outFd: -1}
	if f, ok := s.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		t.inFd, t.inTerm = int(f.Fd()), true
	}
	if f, ok := s.Out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		t.outFd, t.outTerm = int(f.Fd()), true
	}
	return t
}

// raw puts the local terminal in raw mode when tty is set and stdin is a terminal, so keys
// (Ctrl-C included) go to the remote command; the returned function restores it, and may be
// called more than once.
func (t *terminal) raw(tty bool) func() {
	if !tty || !t.inTerm {
		return func() {}
	}
	st, err := term.MakeRaw(t.inFd)
	if err != nil {
		return func() {}
	}
	var once sync.Once
	return func() { once.Do(func() { _ = term.Restore(t.inFd, st) }) }
}

// size is the local terminal's, height and width; ok is false without a terminal.
func (t *terminal) size() (h, w uint, ok bool) {
	fd := t.outFd
	if !t.outTerm {
		if !t.inTerm {
			return 0, 0, false
		}
		fd = t.inFd
	}
	cols, rows, err := term.GetSize(fd)
	if err != nil || cols <= 0 || rows <= 0 {
		return 0, 0, false
	}
	return uint(rows), uint(cols), true
}

// followSize gives the remote terminal the local size now and whenever the local one changes
// (SIGWINCH), until stop is called or ctx ends. The first resize is retried a few times: the
// engine refuses it until the process runs.
func (t *terminal) followSize(ctx context.Context, resize func(ctx context.Context, h, w uint) error) (stop func()) {
	if _, _, ok := t.size(); !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	changed := make(chan os.Signal, 1)
	notifyResize(changed)
	done := make(chan struct{})
	go func() {
		defer close(done)
		apply := func() error {
			h, w, ok := t.size()
			if !ok {
				return nil
			}
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			defer rcancel()
			return resize(rctx, h, w)
		}
		for i := 0; i < 10 && apply() != nil; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(i+1) * 10 * time.Millisecond):
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				_ = apply()
			}
		}
	}()
	return func() {
		signal.Stop(changed)
		cancel()
		<-done
	}
}

// heldOutput keeps what is written to its writers until released, then writes it through,
// in order.
type heldOutput struct {
	mu       sync.Mutex
	released bool
	chunks   []heldChunk
}

type heldChunk struct {
	w io.Writer
	b []byte
}

type heldWriter struct {
	h *heldOutput
	w io.Writer
}

func (h *heldOutput) writer(w io.Writer) io.Writer { return heldWriter{h: h, w: w} }

func (hw heldWriter) Write(p []byte) (int, error) {
	hw.h.mu.Lock()
	defer hw.h.mu.Unlock()
	if hw.h.released {
		return hw.w.Write(p)
	}
	hw.h.chunks = append(hw.h.chunks, heldChunk{w: hw.w, b: bytes.Clone(p)})
	return len(p), nil
}

// release writes what is held and lets what follows through.
func (h *heldOutput) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return nil
	}
	h.released = true
	for _, c := range h.chunks {
		if _, err := c.w.Write(c.b); err != nil {
			return err
		}
	}
	h.chunks = nil
	return nil
}

func (h *heldOutput) isReleased() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.released
}

// text is what is held.
func (h *heldOutput) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b bytes.Buffer
	for _, c := range h.chunks {
		b.Write(c.b)
	}
	return b.String()
}
