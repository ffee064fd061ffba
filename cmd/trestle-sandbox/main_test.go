package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFlags(t *testing.T) {
	ctx := t.Context()
	if err := run(ctx, []string{"-h"}); err != nil {
		t.Errorf("-h: %v", err)
	}
	if err := run(ctx, []string{"extra"}); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Errorf("extra argument: %v", err)
	}
	// Refused before anything is built or started.
	if err := run(ctx, []string{"-listen", "0.0.0.0:8088"}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("-listen 0.0.0.0:8088: %v", err)
	}
}

// TestCtrlCStopsEverything runs the command as a newcomer does, waits for
// it to be ready, presses Ctrl-C, and checks that it exits 0 leaving no
// process, port or file behind.
func TestCtrlCStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: the sandbox runs Dendrite and the bridge, which -short leaves out")
	}
	bin := filepath.Join(t.TempDir(), "trestle-sandbox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Everything the sandbox creates in the temporary directory (its state,
	// the bridge binary) must be gone when it exits.
	tmp := t.TempDir()
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The output is read in the background until the process exits; ready
	// is closed when the banner's last line has been printed.
	var output syncBuffer
	ready, exited := make(chan struct{}), make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			output.WriteLine(sc.Text())
			if sc.Text() == "Ctrl-C to stop." {
				close(ready)
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // only if the test failed halfway

	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("the sandbox exited before it was ready: %v\n%s", err, output.String())
	case <-time.After(10 * time.Minute): // a cold run builds Dendrite
		t.Fatalf("the sandbox was not ready in time:\n%s", output.String())
	}
	out := output.String()
	for _, want := range []string{"Phone page", "homeserver http://127.0.0.1:", "username   @me:localhost", "password", "Account SID AC"} {
		if !strings.Contains(out, want) {
			t.Errorf("the banner lacks %q:\n%s", want, out)
		}
	}
	listening := []string{
		findURL(t, out, `Phone page\s+(http://\S+)`),
		findURL(t, out, `homeserver (http://\S+)`),
	}
	children := childrenOf(t, cmd.Process.Pid)
	if len(children) < 2 {
		t.Fatalf("expected Dendrite and the bridge as child processes, found %v", children)
	}

	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v\n%s", err, output.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("still running 90 s after Ctrl-C:\n%s", output.String())
	}
	t.Logf("stopped %s after Ctrl-C", time.Since(start).Round(time.Millisecond))

	for _, pid := range children {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child process %d is still there (%v)", pid, err)
		}
	}
	for _, u := range listening {
		if c, err := net.DialTimeout("tcp", hostOf(t, u), time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections", u)
		}
	}
	left, _ := os.ReadDir(tmp)
	for _, e := range left {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}

func findURL(t *testing.T, out, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in the output:\n%s", pattern, out)
	}
	return m[1]
}

func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc to find child processes in: %v", err)
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		stat, _ := io.ReadAll(f)
		f.Close()
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// syncBuffer collects output lines from one goroutine for another.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s + "\n")
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
