package dendrite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCompleteNeedsMarkerAndAllBinaries(t *testing.T) {
	dir := t.TempDir()
	b := Binaries{Dir: dir}
	if complete(b) {
		t.Fatal("an empty directory counts as a complete cache")
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if err := os.WriteFile(b.Path(c), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if complete(b) {
		t.Error("a cache without the marker counts as complete")
	}
	if err := os.WriteFile(filepath.Join(dir, markerName), []byte(Module+"@v0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if complete(b) {
		t.Error("a cache of another version counts as complete")
	}
	if err := os.WriteFile(filepath.Join(dir, markerName), []byte(markerContent), 0o644); err != nil {
		t.Fatal(err)
	}
	if !complete(b) {
		t.Error("a full cache does not count as complete")
	}
	if err := os.Remove(b.Path("create-account")); err != nil {
		t.Fatal(err)
	}
	if complete(b) {
		t.Error("a cache missing create-account counts as complete")
	}
}

func TestEnsureBinariesReusesACompleteCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	t.Setenv(CacheEnv, dir)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if err := os.WriteFile(Binaries{Dir: dir}.Path(c), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, markerName), []byte(markerContent), 0o644); err != nil {
		t.Fatal(err)
	}
	// A context that is already done proves no build or lock wait happens.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b, err := EnsureBinaries(ctx)
	if err != nil {
		t.Fatalf("EnsureBinaries on a complete cache: %v", err)
	}
	if b.Dir != dir {
		t.Errorf("cache dir %s, want %s", b.Dir, dir)
	}
}

func TestLockFileIsExclusiveAndCancellable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := lockFile(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}

	// flock locks belong to open file descriptions, so a second open in
	// this same process contends like another test binary would.
	short, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	if _, err := lockFile(short, path); err == nil {
		t.Fatal("took a lock that is held")
	}

	got := make(chan error, 1)
	go func() {
		unlock2, err := lockFile(t.Context(), path)
		if err == nil {
			unlock2()
		}
		got <- err
	}()
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting for a released lock: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the lock after it was released")
	}
}
