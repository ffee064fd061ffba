package commands

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// loginDialogue walks a LoginProcess as a chat: one question per field,
// answers taken from the user's next messages in the same room.
type loginDialogue struct {
	process bridgev2.LoginProcess
	room    id.RoomID
	step    *bridgev2.LoginStep
	answers map[string]string
	// field is the index of the field being asked.
	field int
}

func (p *Processor) dialogue(user id.UserID) *loginDialogue {
	p.loginsMu.Lock()
	defer p.loginsMu.Unlock()
	return p.logins[user]
}

func (p *Processor) setDialogue(user id.UserID, d *loginDialogue) {
	p.loginsMu.Lock()
	defer p.loginsMu.Unlock()
	if d == nil {
		delete(p.logins, user)
	} else {
		p.logins[user] = d
	}
}

func (p *Processor) login(ctx context.Context, e *Event) error {
	if e.Portal != nil {
		return bridgev2.NewError("Log in from your management room (your DM with me), not a portal room: I will ask for secrets.", nil)
	}
	if old := p.dialogue(e.User.MXID); old != nil {
		old.process.Cancel()
		p.setDialogue(e.User.MXID, nil)
	}
	flows := e.Bridge.Network.LoginFlows()
	if len(flows) == 0 {
		return bridgev2.NewError("This bridge offers no way to log in.", nil)
	}
	flow := flows[0]
	if len(e.Args) > 0 {
		found := false
		for _, f := range flows {
			if strings.EqualFold(f.ID, e.Args[0]) {
				flow, found = f, true
			}
		}
		if !found {
			return bridgev2.NewError(fmt.Sprintf("Unknown login flow `%s`. Available: %s.", e.Args[0], flowList(flows)), nil)
		}
	} else if len(flows) > 1 {
		e.Reply(ctx, "Logging in with %s. Other ways: %s (use `login <flow>`).", flow.Name, flowList(flows))
	}
	process, err := e.Bridge.Network.CreateLogin(ctx, e.User, flow.ID)
	if err != nil {
		return err
	}
	step, err := process.Start(ctx)
	if err != nil {
		process.Cancel()
		return err
	}
	d := &loginDialogue{process: process, room: e.RoomID}
	p.setDialogue(e.User.MXID, d)
	p.showStep(ctx, e.CommandEvent, d, step)
	return nil
}

func flowList(flows []bridgev2.LoginFlow) string {
	names := make([]string, len(flows))
	for i, f := range flows {
		names[i] = fmt.Sprintf("`%s` (%s)", f.ID, f.Name)
	}
	return strings.Join(names, ", ")
}

func (p *Processor) cancel(ctx context.Context, e *Event) error {
	d := p.dialogue(e.User.MXID)
	if d == nil {
		e.Reply(ctx, "There is nothing to cancel.")
		return nil
	}
	d.process.Cancel()
	p.setDialogue(e.User.MXID, nil)
	e.Reply(ctx, "Login cancelled.")
	return nil
}

// showStep presents a step: instructions and the first question, or the
// result of a completed login.
func (p *Processor) showStep(ctx context.Context, ce *bridgev2.CommandEvent, d *loginDialogue, step *bridgev2.LoginStep) {
	reply := func(text string) {
		if err := p.bridge.Reply(ctx, ce.RoomID, text); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not send login prompt")
		}
	}
	d.step, d.field, d.answers = step, 0, map[string]string{}
	switch step.Type {
	case bridgev2.LoginStepComplete:
		p.setDialogue(ce.User.MXID, nil)
		name := ""
		if step.Complete != nil && step.Complete.UserLogin != nil {
			name = step.Complete.UserLogin.RemoteName
		}
		msg := "Logged in"
		if name != "" {
			msg += " as " + name
		}
		if step.Instructions != "" {
			msg += ". " + step.Instructions
		}
		reply(msg)
	case bridgev2.LoginStepUserInput:
		if step.UserInput == nil || len(step.UserInput.Fields) == 0 {
			p.setDialogue(ce.User.MXID, nil)
			reply("The login asked for nothing; please try again.")
			return
		}
		text := ""
		if step.Instructions != "" {
			text = step.Instructions + "\n\n"
		}
		reply(text + question(step.UserInput.Fields[0]))
	case bridgev2.LoginStepDisplayAndWait:
		text := step.Instructions
		if step.Display != nil && step.Display.Data != "" {
			text += "\n\n`" + step.Display.Data + "`"
		}
		reply(text)
		waiter, ok := d.process.(bridgev2.LoginProcessWaiter)
		if !ok {
			p.setDialogue(ce.User.MXID, nil)
			return
		}
		next, err := waiter.Wait(ctx)
		if err != nil {
			p.setDialogue(ce.User.MXID, nil)
			reply("Login failed: " + bridgev2.HumanMessage(err))
			return
		}
		p.showStep(ctx, ce, d, next)
	}
}

func question(f bridgev2.LoginInputField) string {
	q := "Please send your **" + f.Name + "**"
	if f.Description != "" {
		q += " (" + f.Description + ")"
	}
	if len(f.Options) > 0 {
		q += ". Options: `" + strings.Join(f.Options, "`, `") + "`"
	}
	if f.Optional {
		q += ", or `-` to skip"
	}
	if f.Type.IsSecret() {
		q += ". I will delete your message as soon as I have read it"
	}
	return q + ". Send `cancel` to stop."
}

// answerLogin takes the user's message as the answer to the current field,
// redacting it first if it is a secret.
func (p *Processor) answerLogin(ctx context.Context, ce *bridgev2.CommandEvent, d *loginDialogue) {
	reply := func(text string) {
		if err := p.bridge.Reply(ctx, ce.RoomID, text); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not send login reply")
		}
	}
	fields := d.step.UserInput.Fields
	field := fields[d.field]
	answer := strings.TrimSpace(ce.Text)
	if field.Type.IsSecret() {
		if err := p.bridge.RedactAsBot(ctx, ce.RoomID, ce.EventID, "Login secret"); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not redact a message with a login secret")
			reply("⚠️ I could not delete your message with the " + field.Name + ": please delete it yourself.")
		}
	}
	if field.Optional && answer == "-" {
		answer = ""
	} else if field.Pattern != "" {
		if re, err := regexp.Compile(field.Pattern); err == nil && !re.MatchString(answer) {
			reply("That doesn't look like a valid " + field.Name + ". " + question(field))
			return
		}
	}
	d.answers[field.ID] = answer
	d.field++
	if d.field < len(fields) {
		reply(question(fields[d.field]))
		return
	}
	next, err := d.process.SubmitUserInput(ctx, d.answers)
	if err != nil {
		// The process is still usable: ask the same step again.
		zerolog.Ctx(ctx).Info().Err(err).Msg("Login step failed")
		d.field, d.answers = 0, map[string]string{}
		reply("Login failed: " + bridgev2.HumanMessage(err) + "\n\nLet's try again. " + question(fields[0]))
		return
	}
	p.showStep(ctx, ce, d, next)
}
