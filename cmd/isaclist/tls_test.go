package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/isaclist/isaclist/store"
)

// writeCert writes a self-signed certificate for host and returns its pool.
func writeCert(t *testing.T, certFile, keyFile, host string, serial int64) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644) //nolint:errcheck
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600) //nolint:errcheck
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestSTARTTLSAndCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	pool := writeCert(t, certFile, keyFile, listHost, 1)
	w := newWorld(t, worldOpts{extraConfig: ""})
	w.stop()
	cfg, _ := os.ReadFile(w.cfgPath)
	cfg = []byte(strings.Replace(string(cfg), "[smtp]\n", "[smtp]\ntls_cert = \""+certFile+"\"\ntls_key = \""+keyFile+"\"\n", 1))
	os.WriteFile(w.cfgPath, cfg, 0o600) //nolint:errcheck
	w.start()

	// go-smtp's TLS handshake happens at the first command after STARTTLS.
	dial := func(pool *x509.CertPool) (*smtp.Client, error) {
		c, err := smtp.DialStartTLS(w.smtp, &tls.Config{ServerName: listHost, RootCAs: pool})
		if err != nil {
			return nil, err
		}
		if err := c.Hello("mail.member-a.example"); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	c, err := dial(pool)
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	msg := w.sign("member-a.example", plainPost("alice@member-a.example", "[TLP:GREEN] over TLS").Bytes())
	if err := c.SendMail("alice@member-a.example", []string{listAddr}, strings.NewReader(string(msg))); err != nil {
		t.Fatalf("post over TLS: %v", err)
	}
	c.Quit() //nolint:errcheck
	got := w.copies(0, 3)
	m, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	if rcv := m.Header.Get("Received"); !strings.Contains(rcv, "with ESMTPS") {
		t.Errorf("Received does not record TLS: %s", rcv)
	}

	// A renewed certificate is used after Reload (SIGHUP), without restart.
	pool2 := writeCert(t, certFile, keyFile, listHost, 2)
	if err := w.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if c, err := dial(pool2); err != nil {
		t.Errorf("after reload, the new certificate is not served: %v", err)
	} else {
		c.Close()
	}
	if _, err := dial(pool); err == nil {
		t.Error("after reload, the old certificate is still served")
	}
	_ = sandbox.Send
}

// Mail to the list's owner address reaches the owners, if authenticated.
func TestOwnerAddressReachesTheOwners(t *testing.T) {
	w := newWorld(t, worldOpts{})
	owner := "isac-owner@" + listHost
	raw := w.sign("outsider.example", sandbox.Message{From: "Olga Outsider <olga@outsider.example>", To: owner, Subject: "We would like to join", Body: "Hello\n"}.Bytes())
	if _, err := sandbox.Send(w.smtp, "mail.outsider.example", "olga@outsider.example", []string{owner}, raw); err != nil {
		t.Fatalf("owner mail refused: %v", err)
	}
	got := w.copies(0, 1)
	if got[0].To[0] != "secretary@member-c.example" {
		t.Fatalf("owner mail went to %v", got[0].To)
	}
	if err := w.verifyListDKIM(got[0].Data); err != nil {
		t.Error(err)
	}
	data := string(got[0].Data)
	// A stranger's own display name never reaches the board: the owners
	// see the address, marked as external.
	for _, want := range []string{"Reply-To: <olga@outsider.example>", `From: "olga@outsider.example (external) via Energy ISAC owners"`, "We would like to join", "isac-owner@" + listHost} {
		if !strings.Contains(data, want) {
			t.Errorf("forwarded owner mail lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(data, "Olga Outsider") {
		t.Errorf("the stranger's display name reached the owners:\n%s", data)
	}
	// Unauthenticated mail to the owners is refused.
	raw = sandbox.Message{From: "alice@member-a.example", To: owner, Subject: "Please add my friend", Body: "x\n"}.Bytes()
	if _, err := sandbox.Send(w.smtp, "mail.attacker.example", "eve@outsider.example", []string{owner}, raw); err == nil {
		t.Error("an unauthenticated message to the owners was forwarded")
	}
}

// Through a relay that is not on loopback-style trust: STARTTLS verified
// against the configured CA, and AUTH PLAIN with the password from a file.
func TestRelayWithSTARTTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key")
	writeCert(t, certFile, keyFile, "localhost", 7)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := testmail.StartSinkWith(&tls.Config{Certificates: []tls.Certificate{cert}}, "isaclist", "s3cret-relay")
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	pw := filepath.Join(dir, "relay.pw")
	os.WriteFile(pw, []byte("s3cret-relay\n"), 0o600) //nolint:errcheck
	w := newWorld(t, worldOpts{})
	w.stop()
	cfg, _ := os.ReadFile(w.cfgPath)
	_, port, _ := strings.Cut(relay.Addr, ":")
	cfg = []byte(strings.Replace(string(cfg), "relay = \""+w.sink.Addr+"\"", fmt.Sprintf("relay = \"localhost:%s\"\nrelay_tls = \"starttls\"\nrelay_ca_file = %q\nrelay_username = \"isaclist\"\nrelay_password_file = %q", port, certFile, pw), 1))
	os.WriteFile(w.cfgPath, cfg, 0o600) //nolint:errcheck
	w.start()
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] via an authenticated relay", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	got := relay.Wait(3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("relay got %d copies\n%s", len(got), w.logs)
	}
	for _, m := range got {
		if !m.TLS {
			t.Errorf("copy to %s crossed without TLS", m.To[0])
		}
	}
	if strings.Contains(w.logs.String(), "s3cret-relay") {
		t.Error("the relay password is in the log")
	}
	// Each copy's result stays visible: sent, over TLS, with the reply.
	w.waitQueueEmpty()
	var results []admin.QueueEntry
	if err := json.Unmarshal([]byte(w.mustRun("queue", "list", "--all", "--json")), &results); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, e := range results {
		for _, d := range e.Deliveries {
			if d.State == admin.StateSent && d.TLS && strings.HasPrefix(d.LastReply, "250") {
				sent++
			}
		}
	}
	if sent != 3 {
		t.Errorf("queue list --all shows %d copies sent over TLS, want 3: %+v", sent, results)
	}
	// A wrong password: the copies wait in the queue, the log says why.
	os.WriteFile(pw, []byte("wrong\n"), 0o600) //nolint:errcheck
	w.stop()
	w.start()
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] second", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	q := w.mustRun("queue", "list")
	if !strings.Contains(q, "AUTH") || strings.Count(q, "deferred") != 3 {
		t.Errorf("the queue does not hold the 3 copies deferred for the AUTH failure:\n%s", q)
	}
	// The failed attempts were made over TLS, and the queue says so.
	var pending []admin.QueueEntry
	if err := json.Unmarshal([]byte(w.mustRun("queue", "list", "--json")), &pending); err != nil {
		t.Fatal(err)
	}
	for _, e := range pending {
		for _, d := range e.Deliveries {
			if d.State == store.StateDeferred && !d.TLS {
				t.Errorf("deferred copy to %s does not record that its attempt used TLS", d.Rcpt)
			}
		}
	}
}
