package rig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BridgeProcess is the bridge binary running as a user would run it.
type BridgeProcess struct {
	Files   *BridgeFiles
	LogPath string
	// URL is the process's own listener (appservice.hostname and port),
	// which differs from appservice.address behind a load balancer.
	URL string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartBridge runs the binary with the config and waits until it answers
// /_trestle/ready. Its output is appended to logPath.
func StartBridge(ctx context.Context, binary string, files *BridgeFiles, logPath string) (*BridgeProcess, error) {
	cfg, err := files.LoadConfig()
	if err != nil {
		return nil, err
	}
	p := &BridgeProcess{Files: files, LogPath: logPath, URL: fmt.Sprintf("http://%s:%d", cfg.AppService.Hostname, cfg.AppService.Port)}
	if err := p.start(ctx, binary); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *BridgeProcess) start(ctx context.Context, binary string) error {
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(binary, "-c", p.Files.Config)
	cmd.Dir = p.Files.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, and killed with the test process, so an
	// interrupted test leaves nothing running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start bridge: %w", err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return p.waitReady(ctx, done)
}

func (p *BridgeProcess) waitReady(ctx context.Context, done chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(p.URL + "/_trestle/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("bridge exited before it was ready (%v); log tail:\n%s", p.exitErr(), p.LogTail(30))
		case <-ctx.Done():
			return fmt.Errorf("bridge not ready: %w; log tail:\n%s", ctx.Err(), p.LogTail(30))
		case <-tick.C:
		}
	}
}

func (p *BridgeProcess) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Restart stops the bridge gracefully and starts it again.
func (p *BridgeProcess) Restart(ctx context.Context, binary string) error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.start(ctx, binary)
}

// StartAgain starts a stopped or killed bridge.
func (p *BridgeProcess) StartAgain(ctx context.Context, binary string) error {
	return p.start(ctx, binary)
}

// Stop sends SIGTERM and waits for the exit; a clean shutdown exits 0.
// After 60 s it kills the process and reports that as an error.
func (p *BridgeProcess) Stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return errors.New("bridge did not stop within 60 s of SIGTERM")
	}
	if err := p.exitErr(); err != nil {
		return fmt.Errorf("bridge exited uncleanly after SIGTERM: %w", err)
	}
	return nil
}

// Kill sends SIGKILL, as a crash or the OOM killer would, and waits.
func (p *BridgeProcess) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Running reports whether the process has not exited.
func (p *BridgeProcess) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// PID is the process ID, for resource measurements.
func (p *BridgeProcess) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// LogTail returns the last n lines of the bridge's log.
func (p *BridgeProcess) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
