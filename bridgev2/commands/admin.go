package commands

import (
	"context"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

// adminCommands are the bridge admin's tools. help lists them only to
// admins, and Handle refuses them to everyone else.
func adminCommands() []*Command {
	return []*Command{
		{Name: "list-user", Args: "<Matrix ID>", Help: "Admin: list a user's logins and the chats of each.", Level: bridgeconfig.LevelAdmin, Run: listUser},
		{Name: "logout-user", Args: "<Matrix ID> <login>", Help: "Admin: log one of a user's logins out (its ID, or its number from `list-user`).", Level: bridgeconfig.LevelAdmin, Run: logoutUser},
		{Name: "resync", Help: "Admin, in a portal room: make the room match the chat again (name, members, bridge state).", Level: bridgeconfig.LevelAdmin, Run: resync},
		{Name: "delete-portal", Help: "Admin, in a portal room: unbridge it, kick everyone and forget it; the next message opens a new room.", Level: bridgeconfig.LevelAdmin, Run: deletePortal},
		{Name: "clean-portals", Help: "Admin: delete the portals whose login is gone.", Level: bridgeconfig.LevelAdmin, Run: cleanPortals},
	}
}

// targetUser is the user an admin command names by Matrix ID.
func targetUser(ctx context.Context, e *Event) (*bridgev2.User, error) {
	if len(e.Args) == 0 {
		return nil, bridgev2.NewError(fmt.Sprintf("Usage: `%s <Matrix ID>`.", e.Command), nil)
	}
	mxid := id.UserID(e.Args[0])
	if _, _, err := mxid.Parse(); err != nil || !strings.HasPrefix(e.Args[0], "@") {
		return nil, bridgev2.NewError(fmt.Sprintf("`%s` is not a Matrix ID (like `@alice:example.com`).", e.Args[0]), nil)
	}
	return e.Bridge.GetUser(ctx, mxid)
}

func listUser(ctx context.Context, e *Event) error {
	user, err := targetUser(ctx, e)
	if err != nil {
		return err
	}
	logins := user.Logins()
	if len(logins) == 0 {
		e.Reply(ctx, "%s has no logins.", user.MXID)
		return nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "Logins of %s:\n", user.MXID)
	for i, l := range logins {
		fmt.Fprintf(&sb, "%d. %s (`%s`): %s\n", i+1, l.RemoteName, l.ID, l.State().StateEvent)
		portals, err := e.Bridge.PortalsOf(ctx, l)
		if err != nil {
			return err
		}
		for _, p := range portals {
			name := p.Name
			if name == "" {
				name = string(p.ID)
			}
			fmt.Fprintf(&sb, "    * %s: [%s](https://matrix.to/#/%s)\n", name, p.MXID, p.MXID)
		}
	}
	e.Reply(ctx, "%s", sb.String())
	return nil
}

func logoutUser(ctx context.Context, e *Event) error {
	user, err := targetUser(ctx, e)
	if err != nil {
		return err
	}
	if len(e.Args) < 2 {
		return bridgev2.NewError("Usage: `logout-user <Matrix ID> <login>`. See `list-user` for their logins.", nil)
	}
	ref := strings.TrimSpace(strings.TrimPrefix(e.RawArgs, e.Args[0]))
	login := findLogin(user, ref)
	if login == nil {
		return bridgev2.NewError(fmt.Sprintf("%s has no login called `%s`. See `list-user %s`.", user.MXID, ref, user.MXID), nil)
	}
	if err := login.Logout(ctx); err != nil {
		return err
	}
	e.Reply(ctx, "Logged %s out of %s.", user.MXID, login.RemoteName)
	return nil
}

func resync(ctx context.Context, e *Event) error {
	if e.Portal == nil {
		return bridgev2.NewError("Run `resync` in the portal room to repair.", nil)
	}
	if err := e.Portal.Resync(ctx); err != nil {
		return err
	}
	e.Reply(ctx, "This room matches the chat again.")
	return nil
}

func deletePortal(ctx context.Context, e *Event) error {
	if e.Portal == nil {
		return bridgev2.NewError("Run `delete-portal` in the portal room to delete.", nil)
	}
	return e.Bridge.DeletePortal(ctx, e.Portal, "a bridge admin deleted it.")
}

func cleanPortals(ctx context.Context, e *Event) error {
	n, err := e.Bridge.DeleteOrphanedPortals(ctx)
	if err != nil {
		return err
	}
	e.Reply(ctx, "Deleted %d portals whose login was gone.", n)
	return nil
}
