package remote

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testKeys are made once: rsa 3072 takes a while.
var testKeys = sync.OnceValues(func() (map[string]ssh.Signer, error) {
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		return nil, err
	}
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	out := map[string]ssh.Signer{}
	for name, k := range map[string]any{"ed25519": edPriv, "ecdsa": ecPriv, "rsa": rsaPriv, "other-ed25519": otherPriv, "client": clientPriv} {
		s, err := ssh.NewSignerFromKey(k)
		if err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
})

func keys(t *testing.T) map[string]ssh.Signer {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sshServer is an in-process SSH server holding the given host keys, as a stock sshd holds
// rsa, ecdsa and ed25519 keys. It accepts only the client key, forwards direct-tcpip channels
// when forward is set (a jump host), and records the host key algorithm each handshake agreed
// on.
type sshServer struct {
	port  int
	mu    sync.Mutex
	algs  []string
	auths int // authentication attempts
}

func startServer(t *testing.T, client ssh.PublicKey, forward bool, hostKeys ...ssh.Signer) *sshServer {
	t.Helper()
	s := &sshServer{}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			s.auths++
			s.mu.Unlock()
			if sameKey(k, client) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	s.port = l.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c, cfg, forward)
		}
	}()
	return s
}

func (s *sshServer) serve(c net.Conn, cfg *ssh.ServerConfig, forward bool) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.algs = append(s.algs, sc.Conn.(ssh.AlgorithmsConnMetadata).Algorithms().HostKey)
	s.mu.Unlock()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if !forward || nc.ChannelType() != "direct-tcpip" {
			_ = nc.Reject(ssh.Prohibited, "test server")
			continue
		}
		var msg struct {
			Host       string
			Port       uint32
			OriginHost string
			OriginPort uint32
		}
		if err := ssh.Unmarshal(nc.ExtraData(), &msg); err != nil {
			_ = nc.Reject(ssh.ConnectionFailed, err.Error())
			continue
		}
		out, err := net.Dial("tcp", net.JoinHostPort(msg.Host, strconv.Itoa(int(msg.Port))))
		if err != nil {
			_ = nc.Reject(ssh.ConnectionFailed, err.Error())
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			_ = out.Close()
			continue
		}
		go ssh.DiscardRequests(creqs)
		go func() {
			_, _ = io.Copy(ch, out)
			_ = ch.CloseWrite()
		}()
		go func() {
			_, _ = io.Copy(out, ch)
			_ = out.Close()
		}()
	}
}

// negotiated waits (briefly: the server side of a handshake may finish just after the client's)
// until n handshakes were recorded and returns their host key algorithms.
func (s *sshServer) negotiated(n int) []string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		s.mu.Lock()
		algs := slices.Clone(s.algs)
		s.mu.Unlock()
		if len(algs) >= n || time.Now().After(deadline) {
			return algs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *sshServer) target(client ssh.Signer, hostKeys ...ssh.PublicKey) *Target {
	return &Target{Address: "127.0.0.1", Port: s.port, User: "root", Signer: client, HostKeys: hostKeys}
}

func dial(t *testing.T, tg *Target) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, tg)
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

func sameKey(a, b ssh.PublicKey) bool { return string(a.Marshal()) == string(b.Marshal()) }

// A stock server holds rsa, ecdsa and ed25519 host keys; whichever one is pinned, the client
// must ask for that one, not for the one x/crypto would prefer (ecdsa).
func TestPinningAnyOfAStockServersKeysConnects(t *testing.T) {
	k := keys(t)
	srv := startServer(t, k["client"].PublicKey(), false, k["rsa"], k["ecdsa"], k["ed25519"])
	for _, name := range []string{"ed25519", "rsa", "ecdsa"} {
		t.Run(name, func(t *testing.T) {
			pinned := k[name].PublicKey()
			c, err := dial(t, srv.target(k["client"], pinned))
			if err != nil {
				t.Fatalf("pinning the server's %s key: %v", name, err)
			}
			if !sameKey(c.HostKey(), pinned) {
				t.Errorf("host key %s, want the pinned %s", ssh.FingerprintSHA256(c.HostKey()), ssh.FingerprintSHA256(pinned))
			}
		})
	}
	// rsa: an rsa-sha2 signature, never SHA-1's ssh-rsa.
	if got, want := srv.negotiated(3), []string{ssh.KeyAlgoED25519, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoECDSA256}; !slices.Equal(got, want) {
		t.Errorf("negotiated host key algorithms %v, want %v", got, want)
	}
}

func TestPinningSeveralKeysConnects(t *testing.T) {
	k := keys(t)
	srv := startServer(t, k["client"].PublicKey(), false, k["rsa"], k["ecdsa"])
	// A pin the server lacks next to one it has.
	c, err := dial(t, srv.target(k["client"], k["ed25519"].PublicKey(), k["ecdsa"].PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	if !sameKey(c.HostKey(), k["ecdsa"].PublicKey()) {
		t.Errorf("host key %s, want the ecdsa one", ssh.FingerprintSHA256(c.HostKey()))
	}
}

func TestAKeyTheServerLacksIsAMismatch(t *testing.T) {
	k := keys(t)
	srv := startServer(t, k["client"].PublicKey(), false, k["rsa"], k["ecdsa"], k["ed25519"])
	_, err := dial(t, srv.target(k["client"], k["other-ed25519"].PublicKey()))
	if !IsHostKeyMismatch(err) {
		t.Fatalf("err = %v, want a host key mismatch", err)
	}
	if want := ssh.FingerprintSHA256(k["ed25519"].PublicKey()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the presented key %s", err, want)
	}
}

// A server that holds no key of any pinned type cannot present an accepted key: that is a
// mismatch (nothing ran, retrying will not help), not a network failure.
func TestNoKeyOfThePinnedTypeIsAMismatch(t *testing.T) {
	k := keys(t)
	srv := startServer(t, k["client"].PublicKey(), false, k["ed25519"])
	_, err := dial(t, srv.target(k["client"], k["ecdsa"].PublicKey()))
	if !IsHostKeyMismatch(err) {
		t.Fatalf("err = %v, want a host key mismatch", err)
	}
	if !strings.Contains(err.Error(), ssh.KeyAlgoED25519) {
		t.Errorf("error %q does not say what the host offers", err)
	}
}

func TestTrustOnFirstUsePrefersEd25519(t *testing.T) {
	k := keys(t)
	srv := startServer(t, k["client"].PublicKey(), false, k["rsa"], k["ecdsa"], k["ed25519"])
	tg := srv.target(k["client"])
	tg.TrustOnFirstUse = true
	c, err := dial(t, tg)
	if err != nil {
		t.Fatal(err)
	}
	if !sameKey(c.HostKey(), k["ed25519"].PublicKey()) {
		t.Errorf("trusted %s (%s), want the ed25519 key", c.HostKey().Type(), ssh.FingerprintSHA256(c.HostKey()))
	}
	// A server without ed25519 still gets trusted, by its next best key.
	srv2 := startServer(t, k["client"].PublicKey(), false, k["rsa"], k["ecdsa"])
	tg2 := srv2.target(k["client"])
	tg2.TrustOnFirstUse = true
	c2, err := dial(t, tg2)
	if err != nil {
		t.Fatal(err)
	}
	if c2.HostKey().Type() != ssh.KeyAlgoECDSA256 {
		t.Errorf("trusted %s, want the ecdsa key", c2.HostKey().Type())
	}
	// Without trust on first use and without keys nothing is accepted.
	if _, err := dial(t, srv.target(k["client"])); !IsHostKeyMismatch(err) {
		t.Errorf("no keys, no trust: err = %v, want a mismatch", err)
	}
}

// The jump host's algorithms follow its own pins, the inner host's follow the inner host's.
func TestJumpHostAlgorithmsFollowItsPins(t *testing.T) {
	k := keys(t)
	inner := startServer(t, k["client"].PublicKey(), false, k["rsa"], k["ecdsa"], k["ed25519"])
	jump := startServer(t, k["client"].PublicKey(), true, k["rsa"], k["ecdsa"], k["other-ed25519"])
	tg := inner.target(k["client"], k["rsa"].PublicKey())
	tg.Jump = &Target{Address: "127.0.0.1", Port: jump.port, User: "root", Signer: k["client"], HostKeys: []ssh.PublicKey{k["other-ed25519"].PublicKey()}}
	c, err := dial(t, tg)
	if err != nil {
		t.Fatal(err)
	}
	if !sameKey(c.HostKey(), k["rsa"].PublicKey()) {
		t.Errorf("inner host key %s, want the pinned rsa key", c.HostKey().Type())
	}
	if !sameKey(c.jump.HostKey(), k["other-ed25519"].PublicKey()) {
		t.Errorf("jump host key %s, want its pinned ed25519 key", c.jump.HostKey().Type())
	}
	if got := jump.negotiated(1); !slices.Equal(got, []string{ssh.KeyAlgoED25519}) {
		t.Errorf("jump host negotiated %v", got)
	}
	if got := inner.negotiated(1); !slices.Equal(got, []string{ssh.KeyAlgoRSASHA512}) {
		t.Errorf("inner host negotiated %v", got)
	}
}

func TestHostKeyAlgorithms(t *testing.T) {
	k := keys(t)
	cert := &ssh.Certificate{Key: k["rsa"].PublicKey(), CertType: ssh.HostCert, ValidPrincipals: []string{"web-1"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, k["ed25519"]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keys []ssh.PublicKey
		want []string
	}{
		{"none: trust on first use", nil, []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}},
		{"rsa", []ssh.PublicKey{k["rsa"].PublicKey()}, []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}},
		{"ecdsa then ed25519", []ssh.PublicKey{k["ecdsa"].PublicKey(), k["ed25519"].PublicKey(), k["other-ed25519"].PublicKey()}, []string{ssh.KeyAlgoECDSA256, ssh.KeyAlgoED25519}},
		{"rsa certificate", []ssh.PublicKey{cert}, []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}},
	} {
		if got := HostKeyAlgorithms(tc.keys); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// ScanHostKey learns the key without authenticating (like ssh-keyscan), ed25519 first.
func TestScanHostKeyDoesNotAuthenticate(t *testing.T) {
	k := keys(t)
	srv := startServer(t, k["client"].PublicKey(), false, k["rsa"], k["ecdsa"], k["ed25519"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Pins are ignored: a scan reports what the host shows.
	got, err := ScanHostKey(ctx, srv.target(k["client"], k["rsa"].PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	if !sameKey(got, k["ed25519"].PublicKey()) {
		t.Errorf("scanned %s, want the ed25519 key", got.Type())
	}
	srv.mu.Lock()
	auths := srv.auths
	srv.mu.Unlock()
	if auths != 0 {
		t.Errorf("%d authentication attempts during a scan", auths)
	}
	// Nothing listens: an error, no key.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	if k, err := ScanHostKey(ctx, &Target{Address: "127.0.0.1", Port: port, User: "root"}); err == nil || k != nil {
		t.Errorf("scan of a closed port: %v, %v", k, err)
	}
}
