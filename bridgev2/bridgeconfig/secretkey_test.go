package bridgeconfig_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

func TestSecretKeysAreReadFromTheConfigAnEnvironmentVariableOrAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("key-from-a-file-0123456789abcdefgh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRESTLE_TEST_SECRET_KEY", "key-from-the-environment-0123456789")
	d := bridgeconfig.Database{SecretKey: "env:TRESTLE_TEST_SECRET_KEY",
		OldSecretKeys: []string{"file:" + file, "key-written-inline-0123456789abcdefgh"}}
	current, old, err := d.SecretKeys()
	if err != nil {
		t.Fatal(err)
	}
	if current != "key-from-the-environment-0123456789" || len(old) != 2 ||
		old[0] != "key-from-a-file-0123456789abcdefgh" || old[1] != "key-written-inline-0123456789abcdefgh" {
		t.Fatalf("resolved %q, %q", current, old)
	}
}

func TestAMissingSecretKeySourceIsNamed(t *testing.T) {
	for _, tc := range []struct {
		d    bridgeconfig.Database
		want string
	}{
		{bridgeconfig.Database{SecretKey: "env:TRESTLE_TEST_UNSET_KEY"}, "database.secret_key names environment variable TRESTLE_TEST_UNSET_KEY"},
		{bridgeconfig.Database{SecretKey: "key-written-inline-0123456789abcdefgh", OldSecretKeys: []string{"file:/nonexistent/key"}}, "database.old_secret_keys[0] names a file"},
		{bridgeconfig.Database{SecretKey: "changeme"}, "database.secret_key is empty or a placeholder"},
	} {
		_, _, err := tc.d.SecretKeys()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.d, err, tc.want)
		}
	}
}
