// Package commands is the bridge bot's command set: help, login, logout,
// list-logins, start-chat, set-relay and the rest. It uses only the core's
// public API, the same one the provisioning API uses.
package commands

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// Command is one bot command.
type Command struct {
	Name    string
	Aliases []string
	// Args is the usage shown in help, e.g. "<phone number>".
	Args string
	Help string
	// Level is the permission a user needs to run it.
	Level bridgeconfig.Level
	Run   func(ctx context.Context, e *Event) error
}

// Event is a command being run.
type Event struct {
	*bridgev2.CommandEvent
	Bridge  *bridgev2.Bridge
	Command string
	Args    []string
	// RawArgs is the text after the command name, unsplit.
	RawArgs string
	proc    *Processor
}

// Reply answers in the room the command came from.
func (e *Event) Reply(ctx context.Context, format string, args ...any) {
	text := format
	if len(args) > 0 {
		text = fmt.Sprintf(format, args...)
	}
	if err := e.Bridge.Reply(ctx, e.RoomID, text); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not send command reply")
	}
}

// Processor dispatches bot commands; it implements bridgev2.CommandProcessor.
type Processor struct {
	bridge   *bridgev2.Bridge
	commands map[string]*Command
	ordered  []*Command

	// logins holds each user's login in progress, driven by their replies.
	loginsMu sync.Mutex
	logins   map[id.UserID]*loginDialogue
}

// New returns the processor with the standard commands.
func New(b *bridgev2.Bridge) *Processor {
	p := &Processor{bridge: b, commands: make(map[string]*Command), logins: make(map[id.UserID]*loginDialogue)}
	for _, cmd := range []*Command{
		{Name: "help", Help: "Show this list of commands.", Level: bridgeconfig.LevelRelay, Run: p.help},
		{Name: "ping", Help: "Check that the bridge is alive.", Level: bridgeconfig.LevelRelay, Run: ping},
		{Name: "version", Help: "Show the bridge's version.", Level: bridgeconfig.LevelRelay, Run: version},
		{Name: "login", Args: "[flow]", Help: "Log in to the remote network. Secrets you type are removed from the room as soon as they are read.", Level: bridgeconfig.LevelUser, Run: p.login},
		{Name: "cancel", Help: "Cancel the login in progress.", Level: bridgeconfig.LevelUser, Run: p.cancel},
		{Name: "list-logins", Help: "List your logins.", Level: bridgeconfig.LevelUser, Run: listLogins},
		{Name: "logout", Args: "<login>", Help: "Log out of one of your logins (its ID, or its number from `list-logins`).", Level: bridgeconfig.LevelUser, Run: logout},
		{Name: "start-chat", Aliases: []string{"pm"}, Args: "[login] <identifier>[, <identifier>...]", Help: "Open a chat with a remote contact (for SMS: a phone number), or a group chat with several, separated by commas.", Level: bridgeconfig.LevelUser, Run: startChat},
		{Name: "set-relay", Args: "[login]", Help: "In a portal room: let users without their own login send through yours.", Level: bridgeconfig.LevelUser, Run: setRelay},
		{Name: "unset-relay", Help: "In a portal room: stop relaying messages.", Level: bridgeconfig.LevelUser, Run: unsetRelay},
		{Name: "set-name", Args: "<name>", Help: "In a one-to-one portal room: name the contact (renaming the room does the same). Your name wins over the network's, for every user of the bridge.", Level: bridgeconfig.LevelUser, Run: setName},
	} {
		p.Register(cmd)
	}
	for _, cmd := range append(doublePuppetCommands(), adminCommands()...) {
		p.Register(cmd)
	}
	return p
}

// Register adds a command, e.g. a connector-specific one.
func (p *Processor) Register(cmd *Command) {
	p.commands[cmd.Name] = cmd
	for _, alias := range cmd.Aliases {
		p.commands[alias] = cmd
	}
	p.ordered = append(p.ordered, cmd)
	sort.Slice(p.ordered, func(i, j int) bool { return p.ordered[i].Name < p.ordered[j].Name })
}

// Handle implements bridgev2.CommandProcessor.
func (p *Processor) Handle(ctx context.Context, ce *bridgev2.CommandEvent) {
	text := strings.TrimSpace(ce.Text)
	fields := strings.Fields(text)
	if dialogue := p.dialogue(ce.User.MXID); dialogue != nil && ce.RoomID == dialogue.room && !ce.HasPrefix {
		// While a login asks questions, what the user types is the answer
		// (except "cancel", so there is always a way out).
		if len(fields) != 1 || strings.ToLower(fields[0]) != "cancel" {
			p.answerLogin(ctx, ce, dialogue)
			return
		}
	}
	e := &Event{CommandEvent: ce, Bridge: p.bridge, proc: p}
	if len(fields) == 0 {
		e.Reply(ctx, "Send `help` for the list of commands.")
		return
	}
	e.Command = strings.ToLower(fields[0])
	e.Args = fields[1:]
	e.RawArgs = strings.TrimSpace(strings.TrimPrefix(text, fields[0]))
	cmd, ok := p.commands[e.Command]
	if !ok {
		e.Reply(ctx, "Unknown command `%s`. Send `help` for the list of commands.", e.Command)
		return
	}
	if ce.User.Level < cmd.Level {
		e.Reply(ctx, "You don't have permission to use `%s`: it needs the %s level and you have %s.", cmd.Name, cmd.Level, ce.User.Level)
		return
	}
	zerolog.Ctx(ctx).Debug().Str("command", cmd.Name).Msg("Running command")
	if err := cmd.Run(ctx, e); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("command", cmd.Name).Msg("Command failed")
		e.Reply(ctx, "%s", bridgev2.HumanMessage(err))
	}
}

func (p *Processor) help(ctx context.Context, e *Event) error {
	var sb strings.Builder
	prefix := e.Bridge.Config.Bridge.CommandPrefix
	sb.WriteString("**Commands** (in this room no prefix is needed; elsewhere start them with `" + prefix + "`):\n\n")
	for _, cmd := range p.ordered {
		if e.User.Level < cmd.Level {
			continue
		}
		usage := cmd.Name
		if cmd.Args != "" {
			usage += " " + cmd.Args
		}
		sb.WriteString("* `" + usage + "`")
		if len(cmd.Aliases) > 0 {
			sb.WriteString(" (also `" + strings.Join(cmd.Aliases, "`, `") + "`)")
		}
		sb.WriteString(": " + cmd.Help + "\n")
	}
	e.Reply(ctx, "%s", sb.String())
	return nil
}

func ping(ctx context.Context, e *Event) error {
	logins := e.User.Logins()
	if len(logins) == 0 {
		e.Reply(ctx, "Pong! You are not logged in.")
		return nil
	}
	var sb strings.Builder
	sb.WriteString("Pong! Your logins:\n")
	for _, l := range logins {
		st := l.State()
		sb.WriteString(fmt.Sprintf("* %s (`%s`): %s", l.RemoteName, l.ID, st.StateEvent))
		if st.Message != "" {
			sb.WriteString(" — " + st.Message)
		}
		sb.WriteString("\n")
	}
	e.Reply(ctx, "%s", sb.String())
	return nil
}

func version(ctx context.Context, e *Event) error {
	v := e.Bridge.Version
	if v == "" {
		v = "unknown"
	}
	e.Reply(ctx, "Trestle %s bridge, version %s.", e.Bridge.Network.Info().DisplayName, v)
	return nil
}

func listLogins(ctx context.Context, e *Event) error {
	logins := e.User.Logins()
	if len(logins) == 0 {
		e.Reply(ctx, "You have no logins. Send `login` to add one.")
		return nil
	}
	var sb strings.Builder
	for i, l := range logins {
		sb.WriteString(fmt.Sprintf("%d. %s (`%s`): %s\n", i+1, l.RemoteName, l.ID, l.State().StateEvent))
	}
	e.Reply(ctx, "%s", sb.String())
	return nil
}

// findLogin resolves a login named by ID, remote name or list position,
// among the user's own logins only.
func findLogin(user *bridgev2.User, ref string) *bridgev2.UserLogin {
	logins := user.Logins()
	var n int
	if _, err := fmt.Sscanf(ref, "%d", &n); err == nil && fmt.Sprint(n) == ref && n >= 1 && n <= len(logins) {
		return logins[n-1]
	}
	for _, l := range logins {
		if string(l.ID) == ref || strings.EqualFold(l.RemoteName, ref) || normalize(l.RemoteName) == normalize(ref) {
			return l
		}
	}
	return nil
}

// normalize strips formatting so "+1 415-555-0100" matches "+14155550100".
func normalize(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if r == '+' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			sb.WriteRune(r)
		}
	}
	return strings.ToLower(sb.String())
}

func logout(ctx context.Context, e *Event) error {
	if len(e.Args) == 0 {
		return bridgev2.NewError("Usage: `logout <login>`. See `list-logins` for your logins.", nil)
	}
	login := findLogin(e.User, e.RawArgs)
	if login == nil {
		return bridgev2.NewError(fmt.Sprintf("You have no login called `%s`. See `list-logins`.", e.RawArgs), nil)
	}
	if err := login.Logout(ctx); err != nil {
		return err
	}
	e.Reply(ctx, "Logged out of %s.", login.RemoteName)
	return nil
}

func startChat(ctx context.Context, e *Event) error {
	logins := e.User.Logins()
	if len(logins) == 0 {
		return bridgev2.NewError("You are not logged in. Send `login` first.", bridgev2.ErrNotLoggedIn)
	}
	if len(e.Args) == 0 {
		return bridgev2.NewError("Usage: `start-chat [login] <identifier>`, e.g. `start-chat +14155550100`.", nil)
	}
	login := logins[0]
	identifier := e.RawArgs
	if len(e.Args) > 1 {
		if l := findLogin(e.User, e.Args[0]); l != nil {
			login = l
			identifier = strings.TrimSpace(strings.TrimPrefix(e.RawArgs, e.Args[0]))
		}
	}
	if strings.Contains(identifier, ",") {
		return startGroup(ctx, e, login, identifier)
	}
	portal, resolved, err := e.Bridge.CreateChat(ctx, login, identifier)
	if err != nil {
		return err
	}
	name := string(resolved.UserID)
	if resolved.UserInfo != nil && resolved.UserInfo.Name != nil {
		name = *resolved.UserInfo.Name
	}
	e.Reply(ctx, "Opened a chat with %s via %s: [%s](https://matrix.to/#/%s). Accept the invite to start texting.",
		name, login.RemoteName, portal.RoomID(), portal.RoomID())
	if resolved.Notice != "" {
		e.Reply(ctx, "%s", resolved.Notice)
	}
	return nil
}

// startGroup is start-chat with a comma-separated list: a group chat with
// every identifier in it.
func startGroup(ctx context.Context, e *Event, login *bridgev2.UserLogin, list string) error {
	var participants []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			participants = append(participants, p)
		}
	}
	portal, err := e.Bridge.CreateGroup(ctx, login, &bridgev2.GroupParams{Participants: participants})
	if err != nil {
		return err
	}
	e.Reply(ctx, "Opened a group chat with %s via %s: [%s](https://matrix.to/#/%s). Accept the invite to start texting.",
		strings.Join(participants, ", "), login.RemoteName, portal.RoomID(), portal.RoomID())
	return nil
}

func setRelay(ctx context.Context, e *Event) error {
	if e.Portal == nil {
		return bridgev2.NewError("Run `set-relay` in the portal room you want to relay.", nil)
	}
	if !e.Bridge.Config.Bridge.Relay.Enabled {
		return bridgev2.NewError("Relay mode is turned off in this bridge's config (bridge.relay.enabled).", nil)
	}
	if e.Bridge.Config.Bridge.Relay.AdminOnly && e.User.Level < bridgeconfig.LevelAdmin {
		return bridgev2.NewError("Only bridge admins may set relays on this bridge.", nil)
	}
	login := e.Portal.ReceiverLogin()
	if len(e.Args) > 0 {
		login = findLogin(e.User, e.RawArgs)
	}
	if login == nil || (login.UserMXID != e.User.MXID && e.User.Level < bridgeconfig.LevelAdmin) {
		return bridgev2.NewError("You can only relay through one of your own logins.", nil)
	}
	if err := e.Portal.SetRelay(ctx, login.ID); err != nil {
		return err
	}
	e.Reply(ctx, "Messages from users without their own login are now sent through %s.", login.RemoteName)
	return nil
}

func unsetRelay(ctx context.Context, e *Event) error {
	if e.Portal == nil {
		return bridgev2.NewError("Run `unset-relay` in the portal room.", nil)
	}
	relay := e.Bridge.GetLogin(e.Portal.RelayLogin)
	if relay != nil && relay.UserMXID != e.User.MXID && e.User.Level < bridgeconfig.LevelAdmin {
		return bridgev2.NewError("Only the relay's owner or a bridge admin can unset it.", nil)
	}
	if err := e.Portal.SetRelay(ctx, ""); err != nil {
		return err
	}
	e.Reply(ctx, "Relay mode is off for this room.")
	return nil
}

func setName(ctx context.Context, e *Event) error {
	if e.Portal == nil || e.Portal.RoomType != database.RoomTypeDM || e.Portal.OtherUserID == "" {
		return bridgev2.NewError("Run `set-name <name>` in the one-to-one chat with the contact you want to name.", nil)
	}
	name := strings.TrimSpace(e.RawArgs)
	if name == "" {
		return bridgev2.NewError("Give the name: `set-name <name>`.", nil)
	}
	ghost, err := e.Bridge.GetGhost(ctx, e.Portal.OtherUserID)
	if err != nil {
		return err
	}
	if err := ghost.SetUserName(ctx, name); err != nil {
		return bridgev2.NewError("The contact could not be renamed; try again.", err)
	}
	e.Reply(ctx, "The contact is now called %s.", name)
	return nil
}
