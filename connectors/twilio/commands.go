package twilio

import (
	"context"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/commands"
)

// RegisterCommands adds the connector's bot commands: templates, which
// lists the WhatsApp templates of a login's account.
func (c *Connector) RegisterCommands(p *commands.Processor) {
	p.Register(&commands.Command{
		Name:  "templates",
		Help:  "List the account's WhatsApp templates approved for use outside the 24-hour window (in a WhatsApp chat, or with your only WhatsApp login).",
		Level: bridgeconfig.LevelUser,
		Run:   c.runTemplates,
	})
}

// runTemplates answers the templates command.
func (c *Connector) runTemplates(ctx context.Context, e *commands.Event) error {
	cl, err := whatsappClientFor(e.User, e.Portal)
	if err != nil {
		return err
	}
	templates, err := cl.rest.listApprovedTemplates(ctx)
	if err != nil {
		return err
	}
	e.Reply(ctx, "%s", templateList(templates))
	return nil
}

// whatsappClientFor picks the login a command is about: the portal's, in a
// portal room, else the user's only login with a WhatsApp sender.
func whatsappClientFor(user *bridgev2.User, portal *bridgev2.Portal) (*Client, error) {
	if portal != nil {
		if login := user.GetLogin(portal.Receiver); login != nil {
			if cl, ok := login.Client.(*Client); ok && cl.whatsapp != "" {
				return cl, nil
			}
		}
		return nil, bridgev2.NewError("This chat's login has no WhatsApp sender.", nil)
	}
	var found *Client
	for _, login := range user.Logins() {
		if cl, ok := login.Client.(*Client); ok && cl.whatsapp != "" {
			if found != nil {
				return nil, bridgev2.NewError("You have several WhatsApp logins; send the command in a WhatsApp chat of the one you mean.", nil)
			}
			found = cl
		}
	}
	if found == nil {
		return nil, bridgev2.NewError("None of your logins has a WhatsApp sender.", nil)
	}
	return found, nil
}
