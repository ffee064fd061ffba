package dendrite

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"maunium.net/go/mautrix"
)

// CreateUser creates a local account with Dendrite's create-account command,
// which registers through the shared-secret endpoint of the running server.
// Open registration stays disabled, as on a real deployment. Dendrite
// refuses passwords shorter than 8 characters.
func (s *Server) CreateUser(ctx context.Context, localpart, password string, admin bool) error {
	args := []string{
		"-config", s.ConfigPath,
		"-url", s.URL,
		"-username", localpart,
		// Not -password: the password would show up in ps output.
		"-passwordstdin",
	}
	if admin {
		args = append(args, "-admin")
	}
	cmd := exec.CommandContext(ctx, s.bins.Path("create-account"), args...)
	cmd.Dir = s.DataDir
	cmd.Stdin = strings.NewReader(password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("creating the Dendrite account %q: %w\n%s", localpart, err, tail(out, 20))
	}
	return nil
}

// Login logs a local user in with a password and returns a mautrix client
// holding the new access token and device ID.
func (s *Server) Login(ctx context.Context, localpart, password string) (*mautrix.Client, error) {
	return s.LoginDevice(ctx, localpart, password, "trestle test client")
}

// LoginDevice is Login with the display name of the new device (session),
// which clients show in the user's session list.
func (s *Server) LoginDevice(ctx context.Context, localpart, password, device string) (*mautrix.Client, error) {
	cli, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		return nil, fmt.Errorf("creating a Matrix client for %s: %w", s.URL, err)
	}
	_, err = cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 password,
		InitialDeviceDisplayName: device,
		StoreCredentials:         true,
	})
	if err != nil {
		return nil, fmt.Errorf("logging in %s on Dendrite: %w", s.UserID(localpart), err)
	}
	return cli, nil
}
