package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRunServesAndPrintsCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-number", "+15005550006", "-api-key"}, strings.NewReader(""), pw)
		pw.Close()
	}()

	sc := bufio.NewScanner(pr)
	var url, sid, token string
	for sc.Scan() && (url == "" || sid == "" || token == "") {
		f := strings.Fields(sc.Text())
		switch {
		case strings.HasPrefix(sc.Text(), "twiliosim"):
			url = f[len(f)-1]
		case strings.HasPrefix(sc.Text(), "account SID"):
			sid = f[2]
		case strings.HasPrefix(sc.Text(), "auth token"):
			token = f[2]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || sid == "" || token == "" {
		t.Fatalf("printed url %q sid %q token %q", url, sid, token)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/2010-04-01/Accounts/"+sid+".json", nil)
	req.SetBasicAuth(sid, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch account: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	err := run(context.Background(), []string{"-listen", "0.0.0.0:0"}, strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("run on 0.0.0.0: %v", err)
	}
}

func TestRunDeliversWhatsAppLines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan url.Values, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got <- r.PostForm
	}))
	defer hook.Close()
	in, typed := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-number", "+15005550006", "-whatsapp", "-sms-url", hook.URL}, in, io.Discard)
	}()
	go func() { _, _ = io.WriteString(typed, "whatsapp:+15551230001 hello\n") }()
	select {
	case form := <-got:
		if form.Get("From") != "whatsapp:+15551230001" || form.Get("To") != "whatsapp:+15005550006" || form.Get("Body") != "hello" || form.Get("WaId") != "15551230001" {
			t.Fatalf("webhook form = %v", form)
		}
	case <-ctx.Done():
		t.Fatal("no WhatsApp webhook arrived")
	}
	cancel()
	typed.Close()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
