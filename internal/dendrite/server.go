package dendrite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
)

// Options configures a throwaway Dendrite. The zero value is a working
// server named "localhost" with its own temporary data directory.
type Options struct {
	// DataDir holds the config, signing key, SQLite databases, media and
	// log. If empty, Start creates a temporary directory and Stop removes
	// it; a directory given here is left for the caller (t.TempDir()).
	DataDir string
	// ServerName is the Matrix server name, the part after the colon in
	// user IDs. Defaults to "localhost".
	ServerName string
	// AppServiceRegistrations are paths to appservice registration YAML
	// files, such as the ones the bridge writes. They are read when
	// Dendrite starts, so a changed file needs a Restart.
	AppServiceRegistrations []string
	// Port is the loopback port to listen on; 0 picks a free one.
	Port int
	// MaxUploadBytes is the largest media upload accepted. Defaults to
	// 100 MiB, well above Dendrite's own 10 MB default.
	MaxUploadBytes int64
	// LogLevel is Dendrite's log level: "trace", "debug", "info" (the
	// default), "warn" or "error".
	LogLevel string
	// StartTimeout bounds each wait for Dendrite to answer HTTP after it
	// was launched, on top of the caller's context. Defaults to 60s.
	StartTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before it sends
	// SIGKILL. Defaults to 10s.
	StopTimeout time.Duration
	// EditConfig, if set, may change the generated dendrite.yaml (parsed
	// into nested maps) after the defaults of this package were applied.
	EditConfig func(cfg map[string]any)
}

// Server is a Dendrite process run for tests. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the client-server API base URL, such as http://127.0.0.1:40123.
	URL string
	// ServerName is the Matrix server name used in user and room IDs.
	ServerName string
	// DataDir holds the config, signing key, databases, media and log.
	DataDir string
	// ConfigPath is the dendrite.yaml the server runs with.
	ConfigPath string
	// LogPath collects Dendrite's stdout and stderr across restarts.
	LogPath string
	// RegistrationSharedSecret is the secret for shared-secret registration
	// at /_synapse/admin/v1/register, which CreateUser uses.
	RegistrationSharedSecret string

	bins         Binaries
	addr         string
	ownDataDir   bool
	startTimeout time.Duration
	stopTimeout  time.Duration

	mu      sync.Mutex
	proc    *process // nil while Dendrite is not running
	stopped bool     // Stop was called; the server cannot run again
}

// process is one run of the dendrite binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and was reaped
	err  error         // the result of Wait, set before done is closed
}

// Start builds Dendrite if needed (see EnsureBinaries), writes a config for a
// fresh server and runs it until it answers /_matrix/client/versions.
// The caller must call Stop, even when the test fails.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.ServerName == "" {
		opts.ServerName = "localhost"
	}
	if opts.MaxUploadBytes == 0 {
		opts.MaxUploadBytes = 100 << 20
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 10 * time.Second
	}

	bins, err := EnsureBinaries(ctx)
	if err != nil {
		return nil, err
	}
	s := &Server{
		ServerName:   opts.ServerName,
		bins:         bins,
		startTimeout: opts.StartTimeout,
		stopTimeout:  opts.StopTimeout,
	}
	if opts.DataDir == "" {
		if s.DataDir, err = os.MkdirTemp("", "trestle-dendrite-"); err != nil {
			return nil, fmt.Errorf("creating a data directory for Dendrite: %w", err)
		}
		s.ownDataDir = true
	} else {
		if s.DataDir, err = filepath.Abs(opts.DataDir); err != nil {
			return nil, fmt.Errorf("resolving the Dendrite data directory: %w", err)
		}
		if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the Dendrite data directory: %w", err)
		}
	}
	s.ConfigPath = filepath.Join(s.DataDir, "dendrite.yaml")
	s.LogPath = filepath.Join(s.DataDir, "dendrite.log")
	s.RegistrationSharedSecret = randomHex(16)

	keyPath := filepath.Join(s.DataDir, "matrix_key.pem")
	if err := writeSigningKey(ctx, bins.Path("generate-keys"), keyPath); err != nil {
		s.cleanupDataDir()
		return nil, err
	}
	err = writeConfig(ctx, configParams{
		generateConfig: bins.Path("generate-config"),
		dataDir:        s.DataDir,
		configPath:     s.ConfigPath,
		privateKeyPath: keyPath,
		serverName:     s.ServerName,
		sharedSecret:   s.RegistrationSharedSecret,
		appServices:    opts.AppServiceRegistrations,
		maxUploadBytes: opts.MaxUploadBytes,
		logLevel:       opts.LogLevel,
		edit:           opts.EditConfig,
	})
	if err != nil {
		s.cleanupDataDir()
		return nil, err
	}

	// A port found free can be taken by someone else before Dendrite
	// binds it; picking another one is cheap, so retry a few times.
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				s.cleanupDataDir()
				return nil, err
			}
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "http://" + s.addr
		err = s.launch(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || opts.Port != 0 || attempt == 3 {
			s.cleanupDataDir()
			return nil, err
		}
		zerolog.Ctx(ctx).Warn().Str("addr", s.addr).Msg("Dendrite's port was taken before it could bind it; trying another")
	}
}

// freePort asks the kernel for a currently unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port for Dendrite: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// errPortInUse marks a launch that failed because another process took the
// port between choosing it and Dendrite binding it.
var errPortInUse = errors.New("the HTTP port is already in use")

// launch runs the dendrite binary and waits until it serves HTTP. The caller
// must not hold s.mu.
func (s *Server) launch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("starting Dendrite again: the server was stopped for good; use Kill or Restart to keep it")
	}
	if s.proc != nil {
		return fmt.Errorf("starting Dendrite again: it is already running at %s", s.URL)
	}

	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the Dendrite log: %w", err)
	}
	// Error messages only quote what this run logged, not earlier runs.
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	fmt.Fprintf(logFile, "=== trestle: starting Dendrite %s on %s at %s ===\n", Version, s.addr, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(s.bins.Path("dendrite"), "-config", s.ConfigPath, "-http-bind-address", s.addr)
	cmd.Dir = s.DataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so Stop can signal everything it spawns.
		Setpgid: true,
		// Dies with us even when `go test` is killed and cannot run Stop.
		Pdeathsig: syscall.SIGKILL,
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, not
		// the process. Go ends a thread when a goroutine exits while locked
		// to it, so pin the starting thread to this goroutine until the
		// child is gone; no other goroutine can then end it early.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	err = <-started
	logFile.Close() // the child has its own copy of the descriptor
	if err != nil {
		return fmt.Errorf("running %s: %w", s.bins.Path("dendrite"), err)
	}
	s.proc = p

	if err := s.waitReady(ctx, p); err != nil {
		s.haltLocked(false)
		logTail := s.logTail(logStart, 40)
		if strings.Contains(logTail, "address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("%w\nlast lines of %s:\n%s", err, s.LogPath, logTail)
	}
	return nil
}

// waitReady polls /_matrix/client/versions until Dendrite answers 200, the
// process exits or the start timeout passes.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, s.startTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	url := s.URL + "/_matrix/client/versions"
	wait := 10 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("polling Dendrite: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("dendrite exited before it served %s: %v", url, p.err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for Dendrite to serve %s: %w", url, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// Stop ends Dendrite for good: SIGTERM to its process group, SIGKILL if it
// has not exited after the stop timeout, then it waits for the exit. A data
// directory that Start created itself is removed. Stop is idempotent and safe
// to defer.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.haltLocked(true)
	if !s.stopped {
		s.stopped = true
		s.cleanupDataDir()
	}
}

// Restart stops Dendrite gracefully and starts it again with the same port,
// config and data, for tests that restart the homeserver under the bridge.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	s.haltLocked(true)
	s.mu.Unlock()
	return s.launch(ctx)
}

// Kill ends Dendrite abruptly with SIGKILL, like a crash, and keeps its data
// and port so that StartAgain can bring it back. It does nothing if Dendrite
// is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.haltLocked(false)
}

// StartAgain brings a killed Dendrite back on the same port with the same
// data and waits until it answers. Together with Kill it simulates a
// homeserver outage of any length. It fails if Dendrite is running or Stop
// was called.
func (s *Server) StartAgain(ctx context.Context) error {
	return s.launch(ctx)
}

// Pause freezes Dendrite with SIGSTOP. Connections are still accepted by the
// kernel but never answered, which is how a hung homeserver looks to the
// bridge, unlike Kill where connections are refused. Resume undoes it.
//
// It returns once every thread of Dendrite has stopped: the signal alone is
// asynchronous, and a request sent right after it could still be served.
func (s *Server) Pause() error {
	if err := s.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	pid := s.PID()
	deadline := time.Now().Add(5 * time.Second)
	for wait := time.Millisecond; !allThreadsStopped(pid); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pausing Dendrite: process %d did not stop within 5s of SIGSTOP", pid)
		}
		time.Sleep(wait)
	}
	return nil
}

// allThreadsStopped reports whether every thread of pid is in the stopped
// state, according to /proc.
func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses
		// and may itself contain spaces or parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 || i+2 >= len(stat) || (stat[i+2] != 'T' && stat[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume lets a paused Dendrite run again.
func (s *Server) Resume() error {
	return s.signal(syscall.SIGCONT)
}

// Running reports whether the Dendrite process is alive (possibly paused).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// PID returns the process ID of the running Dendrite, or 0 if none runs.
// It is meant for tests that check no process is left behind.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// UserID returns the full Matrix ID of a local user.
func (s *Server) UserID(localpart string) id.UserID {
	return id.NewUserID(localpart, s.ServerName)
}

// LogTail returns the last n lines Dendrite logged, for test failure output.
func (s *Server) LogTail(n int) string {
	return s.logTail(0, n)
}

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return fmt.Errorf("sending %v to Dendrite: it is not running", sig)
	}
	if err := syscall.Kill(-s.proc.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("sending %v to Dendrite's process group: %w", sig, err)
	}
	return nil
}

// haltLocked ends the running process, gracefully (SIGTERM first) or not,
// and waits until it is reaped. The caller holds s.mu.
func (s *Server) haltLocked(graceful bool) {
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	pgid := -p.cmd.Process.Pid
	if graceful {
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		// A paused process only sees the SIGTERM once it runs again.
		_ = syscall.Kill(pgid, syscall.SIGCONT)
		select {
		case <-p.done:
		case <-time.After(s.stopTimeout):
		}
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	<-p.done
	// Anything Dendrite forked into its group must not outlive it either.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

// cleanupDataDir removes the data directory if Start created it.
func (s *Server) cleanupDataDir() {
	if s.ownDataDir {
		_ = os.RemoveAll(s.DataDir)
	}
}

// logTail returns the last n lines of the log file from byte offset from on.
func (s *Server) logTail(from int64, n int) string {
	f, err := os.Open(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	// The tail of a long log is all we need; don't read megabytes of it.
	const window = 64 << 10
	if info, err := f.Stat(); err == nil && info.Size()-from > window {
		from = info.Size() - window
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return tail(b, n)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
