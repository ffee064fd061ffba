package dendrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

const (
	// Module is the Go module Dendrite is built from. It is the Apache-2.0
	// matrix-org module, never the AGPL fork that continued elsewhere.
	Module = "github.com/matrix-org/dendrite"
	// Version is the Dendrite release that is built and run.
	Version = "v0.13.8"
	// CacheEnv names the environment variable that overrides the cache
	// directory for the built binaries.
	CacheEnv = "TRESTLE_DENDRITE_CACHE"
)

// commands are the Dendrite main packages (under cmd/) that a complete cache
// holds.
var commands = []string{"dendrite", "generate-keys", "generate-config", "create-account"}

// markerName is written last into a finished build, so a cache directory
// without it (or with another version in it) is never trusted.
const markerName = "BUILT"

// markerContent identifies what a cache directory was built from.
const markerContent = Module + "@" + Version + "\n"

// Binaries locates the Dendrite commands inside a complete cache directory.
type Binaries struct {
	// Dir is the cache directory; the commands live in its bin folder.
	Dir string
}

// Path returns the path of the named Dendrite command, such as "dendrite".
func (b Binaries) Path(command string) string {
	return filepath.Join(b.Dir, "bin", command)
}

// CacheDir returns where the Dendrite binaries are cached: $TRESTLE_DENDRITE_CACHE
// when set, else a versioned folder in the user's cache directory.
func CacheDir() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return filepath.Abs(dir)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache directory for the Dendrite build (set %s to choose one): %w", CacheEnv, err)
	}
	return filepath.Join(base, "trestle", "dendrite-"+Version), nil
}

// EnsureBinaries returns the cached Dendrite commands, building them first if
// the cache is missing or incomplete.
//
// Several test binaries may call it at once under `go test ./...`: a file lock
// lets exactly one of them build while the others wait for it, and the build
// goes to a temporary directory that is renamed into place only when complete,
// so an interrupted build never leaves a cache that looks usable. A cold build
// takes a few minutes; ctx bounds both the wait and the build.
func EnsureBinaries(ctx context.Context) (Binaries, error) {
	dir, err := CacheDir()
	if err != nil {
		return Binaries{}, err
	}
	bins := Binaries{Dir: dir}
	if complete(bins) {
		return bins, nil
	}

	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("creating the Dendrite cache parent %s: %w", parent, err)
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()

	// Whoever held the lock before us has probably just built it.
	if complete(bins) {
		return bins, nil
	}
	if err := build(ctx, dir); err != nil {
		return Binaries{}, err
	}
	return bins, nil
}

// complete reports whether a cache directory holds a finished build of Version.
func complete(b Binaries) bool {
	marker, err := os.ReadFile(filepath.Join(b.Dir, markerName))
	if err != nil || string(marker) != markerContent {
		return false
	}
	for _, c := range commands {
		info, err := os.Stat(b.Path(c))
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// lockFile takes an exclusive flock on path, waiting for other holders as long
// as ctx allows. Polling with LOCK_NB keeps the wait cancellable, which a
// blocking flock(2) is not.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the Dendrite build lock %s: %w", path, err)
	}
	logged := false
	wait := 50 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("locking the Dendrite build lock %s: %w", path, err)
		}
		if !logged {
			zerolog.Ctx(ctx).Info().Str("lock", path).Msg("Waiting for another process to finish building Dendrite")
			logged = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for another process to build Dendrite (lock %s): %w", path, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// build compiles the Dendrite commands into a temporary sibling of dir and
// renames it to dir once the marker is written. The caller holds the lock.
func build(ctx context.Context, dir string) error {
	log := zerolog.Ctx(ctx)
	parent, base := filepath.Split(dir)
	tmpPattern := "." + base + ".build-"

	// Only the lock holder builds, so any leftover build directory comes
	// from a builder that was killed; it would otherwise pile up.
	if stale, _ := filepath.Glob(filepath.Join(parent, tmpPattern+"*")); len(stale) > 0 {
		for _, s := range stale {
			_ = os.RemoveAll(s)
		}
	}

	tmp, err := os.MkdirTemp(parent, tmpPattern)
	if err != nil {
		return fmt.Errorf("creating a temporary Dendrite build directory in %s: %w", parent, err)
	}
	// MkdirTemp makes it private; the cache is meant to be shared.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("making the Dendrite build directory readable: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = os.RemoveAll(tmp)
		}
	}()

	// The working directory must be outside any module, or `go install`
	// would resolve Dendrite's dependencies against that module's go.mod.
	work, err := os.MkdirTemp("", "trestle-dendrite-build-")
	if err != nil {
		return fmt.Errorf("creating a working directory for the Dendrite build: %w", err)
	}
	defer os.RemoveAll(work)

	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building Dendrite needs the go command on PATH: %w", err)
	}
	args := []string{"install"}
	for _, c := range commands {
		args = append(args, Module+"/cmd/"+c+"@"+Version)
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"GOBIN="+filepath.Join(tmp, "bin"),
		"GOFLAGS=-mod=mod",
		"GOWORK=off",
		"GOTOOLCHAIN=local",
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// A cancelled or killed test must not leave the toolchain running:
	// cancelling kills the whole process group (go and its compilers),
	// and Pdeathsig takes go down with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }

	log.Info().Str("cache", dir).Msg("Building Dendrite " + Version + "; this takes a few minutes the first time")
	started := time.Now()
	// Pdeathsig follows the forking thread, not the process; keep this
	// goroutine on its thread until the build is over (see launch).
	runtime.LockOSThread()
	err = cmd.Run()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("building Dendrite %s with `go %s` failed: %w\n%s", Version, strings.Join(args, " "), err, tail(out.Bytes(), 40))
	}
	if err := os.WriteFile(filepath.Join(tmp, "build.log"), out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("saving the Dendrite build log: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, markerName), []byte(markerContent), 0o644); err != nil {
		return fmt.Errorf("writing the Dendrite build marker: %w", err)
	}
	if !complete(Binaries{Dir: tmp}) {
		return fmt.Errorf("building Dendrite %s left some of %v missing in %s", Version, commands, tmp)
	}

	// An incomplete cache (say, a binary deleted by hand) would make the
	// rename fail, and nobody else is using it since it is incomplete.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the incomplete Dendrite cache %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("moving the Dendrite build into the cache %s: %w", dir, err)
	}
	renamed = true
	log.Info().Str("cache", dir).Dur("took", time.Since(started)).Msg("Built Dendrite " + Version)
	return nil
}

// tail returns the last n lines of b, for error messages that should show the
// end of a long log without flooding the test output.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"[...]"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
