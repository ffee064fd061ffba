package commands

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

// doublePuppetCommands let a user have their own messages from the network
// appear as their Matrix account.
func doublePuppetCommands() []*Command {
	return []*Command{
		{Name: "login-matrix", Args: "<access token>", Help: "Have your own messages sent outside Matrix appear as your Matrix account, using an access token of it. The message with the token is removed as soon as it is read.", Level: bridgeconfig.LevelUser, Run: loginMatrix},
		{Name: "logout-matrix", Help: "Stop using your Matrix access token for your own messages.", Level: bridgeconfig.LevelUser, Run: logoutMatrix},
	}
}

func loginMatrix(ctx context.Context, e *Event) error {
	// The token is a secret: remove it from the room before anything else.
	if err := e.Bridge.RedactAsBot(ctx, e.RoomID, e.EventID, "Access token"); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not redact the message with an access token")
	}
	if len(e.Args) != 1 {
		return bridgev2.NewError("Usage: `login-matrix <access token>` (in Element: Settings, Help & About, Access Token).", nil)
	}
	if err := e.User.LoginMatrix(ctx, e.Args[0]); err != nil {
		return err
	}
	e.Reply(ctx, "Your own messages sent outside Matrix now appear as your Matrix account.")
	return nil
}

func logoutMatrix(ctx context.Context, e *Event) error {
	if err := e.User.LogoutMatrix(ctx); err != nil {
		return err
	}
	if e.User.IsDoublePuppeted() {
		e.Reply(ctx, "Forgot your access token; your homeserver's appservice still lets the bridge send your own messages as you.")
		return nil
	}
	e.Reply(ctx, "Forgot your access token: your own messages sent outside Matrix now come from the ghost of your remote account.")
	return nil
}
