package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// stepResponse is provisioning.yaml's LoginStep: the core's step (which
// already has the spec's JSON shape) with the process ID and the step's
// transaction ID.
type stepResponse struct {
	LoginID string `json:"login_id"`
	TxnID   string `json:"txn_id"`
	*bridgev2.LoginStep
}

func (p *loginProcess) response() stepResponse {
	return stepResponse{LoginID: p.id, TxnID: p.txnID, LoginStep: p.step}
}

// postLoginStart creates a login process with the chosen flow and returns
// its first step.
func (a *API) postLoginStart(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	flowID := r.PathValue("flowID")
	var override networkid.UserLoginID
	if loginID := r.URL.Query().Get("login_id"); loginID != "" {
		l := user.GetLogin(networkid.UserLoginID(loginID))
		if l == nil {
			return notFound("Login not found.")
		}
		override = l.ID
	}
	if !slices.ContainsFunc(a.bridge.Network.LoginFlows(), func(f bridgev2.LoginFlow) bool { return f.ID == flowID }) {
		return notFound(fmt.Sprintf("This bridge has no login flow %q.", flowID))
	}
	processID := newProcessID()
	log := zerolog.Ctx(r.Context()).With().Str("login_process_id", processID).Str("flow_id", flowID).Logger()
	ctx, cancel := context.WithCancel(log.WithContext(context.Background()))
	process, err := a.bridge.Network.CreateLogin(ctx, user, flowID)
	if err != nil {
		cancel()
		return connectorFailure(err, nil)
	}
	step, err := process.Start(ctx)
	if err == nil {
		err = checkStep(step)
	}
	if err != nil {
		process.Cancel()
		cancel()
		return connectorFailure(err, nil)
	}
	p := &loginProcess{
		id: processID, user: user, process: process, override: override, created: time.Now(), log: log,
		ctx: ctx, cancel: cancel, turn: make(chan struct{}, 1),
		step: step, txnID: newTxnID(), finished: step.Type == bridgev2.LoginStepComplete,
	}
	a.addProcess(p)
	log.Info().Str("step_id", step.StepID).Msg("Login process started")
	if p.finished {
		a.completeLogin(p)
	}
	writeJSON(w, http.StatusOK, p.response())
	return nil
}

// postStepUserInput answers a user_input step.
func (a *API) postStepUserInput(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	p := a.getProcess(user, r.PathValue("loginProcessID"))
	if p == nil {
		return processGone()
	}
	var input map[string]string
	if err := decodeBody(r, &input); err != nil {
		return err
	}
	return a.runStep(w, r, p, bridgev2.LoginStepUserInput, func(ctx context.Context, step *bridgev2.LoginStep) (*bridgev2.LoginStep, error) {
		return p.process.SubmitUserInput(ctx, formInput(step, input))
	})
}

// formInput keeps the answers to the step's own fields, with "" for those
// left out, as the chat login does: connectors see exactly the fields they
// asked for.
func formInput(step *bridgev2.LoginStep, input map[string]string) map[string]string {
	form := make(map[string]string, len(step.UserInput.Fields))
	for _, f := range step.UserInput.Fields {
		form[f.ID] = input[f.ID]
	}
	return form
}

// postStepDisplayAndWait waits for a display_and_wait step (a QR code
// being scanned, say) to be done.
func (a *API) postStepDisplayAndWait(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	p := a.getProcess(user, r.PathValue("loginProcessID"))
	if p == nil {
		return processGone()
	}
	return a.runStep(w, r, p, bridgev2.LoginStepDisplayAndWait, func(ctx context.Context, _ *bridgev2.LoginStep) (*bridgev2.LoginStep, error) {
		waiter, ok := p.process.(bridgev2.LoginProcessWaiter)
		if !ok {
			return nil, errors.New("the login process showed a display_and_wait step but cannot wait")
		}
		return waiter.Wait(ctx)
	})
}

// postStepUnsupportedType answers submissions of step types the core never
// produces (cookies, webauthn): the current step cannot be of that type.
func (a *API) postStepUnsupportedType(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	if a.getProcess(user, r.PathValue("loginProcessID")) == nil {
		return processGone()
	}
	return badState("Step type does not match the current step.")
}

// postStepCancel would go back from a cancellable step. No core login step
// is cancellable (none sets can_cancel), so it only checks the request.
func (a *API) postStepCancel(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	p := a.getProcess(user, r.PathValue("loginProcessID"))
	if p == nil {
		return processGone()
	}
	if err := p.takeTurn(r.Context()); err != nil {
		return err
	}
	defer p.releaseTurn()
	if p.finished || r.PathValue("stepID") != p.step.StepID {
		return badState("Step ID does not match the current step.")
	}
	return badState("This login step cannot be cancelled.")
}

// postLoginCancel abandons a login process.
func (a *API) postLoginCancel(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	p := a.getProcess(user, r.PathValue("loginProcessID"))
	if p == nil {
		return processGone()
	}
	a.endProcess(p, "cancelled by the user")
	writeJSON(w, http.StatusOK, emptyObject)
	return nil
}

// runStep submits the current step of p with submit, after checking that
// the request is for that step. A retry of the previous step (same txn_id,
// or the previous step ID) gets the current step again instead, so a
// client that lost an answer can ask again without repeating the step.
func (a *API) runStep(w http.ResponseWriter, r *http.Request, p *loginProcess, kind bridgev2.LoginStepType,
	submit func(ctx context.Context, step *bridgev2.LoginStep) (*bridgev2.LoginStep, error)) *apiError {
	if err := p.takeTurn(r.Context()); err != nil {
		return err
	}
	defer p.releaseTurn()
	a.touch(p, p.finished)
	txnID := r.URL.Query().Get("txn_id")
	stepID := r.PathValue("stepID")
	retry := txnID != "" && txnID == p.prevTxnID ||
		txnID == "" && p.prevStepID != "" && stepID == p.prevStepID && stepID != p.step.StepID
	switch {
	case retry:
		p.log.Debug().Str("step_id", stepID).Msg("Repeated login step submission; returning the current step")
		writeJSON(w, http.StatusOK, p.response())
		return nil
	case p.finished:
		return badState("This login process has already finished.")
	case stepID != p.step.StepID:
		return badState("Step ID does not match the current step.")
	case txnID != "" && txnID != p.txnID:
		return badState("Transaction ID does not match the current step.")
	case kind != p.step.Type:
		return badState("Step type does not match the current step.")
	}
	p.log.Debug().Str("step_id", stepID).Str("step_type", string(kind)).Msg("Submitting login step")
	next, err := submit(p.ctx, p.step)
	if err == nil {
		err = checkStep(next)
	}
	if err != nil {
		if p.ctx.Err() != nil {
			return processGone()
		}
		// As provisioning.yaml says, a failed step fails the login: the
		// manager starts over.
		p.log.Info().Err(err).Str("step_id", stepID).Msg("Login step failed")
		a.endProcess(p, "step failed")
		return connectorFailure(err, nil)
	}
	p.prevStepID, p.prevTxnID = p.step.StepID, p.txnID
	p.step, p.txnID = next, newTxnID()
	if next.Type == bridgev2.LoginStepComplete {
		p.finished = true
		a.completeLogin(p)
	}
	a.touch(p, p.finished)
	writeJSON(w, http.StatusOK, p.response())
	return nil
}

// checkStep refuses steps the API cannot present, so a connector bug ends
// in a clear error rather than a malformed response.
func checkStep(step *bridgev2.LoginStep) error {
	switch {
	case step == nil:
		return errors.New("the login process returned no step")
	case step.Type == bridgev2.LoginStepUserInput && step.UserInput == nil:
		return errors.New("the login process returned a user_input step without fields")
	case step.Type == bridgev2.LoginStepDisplayAndWait && step.Display == nil:
		return errors.New("the login process returned a display_and_wait step with nothing to display")
	case step.Type == bridgev2.LoginStepComplete && step.Complete == nil:
		return errors.New("the login process returned a complete step without the login")
	case step.Type != bridgev2.LoginStepUserInput && step.Type != bridgev2.LoginStepDisplayAndWait && step.Type != bridgev2.LoginStepComplete:
		return fmt.Errorf("the login process returned a step of unknown type %q", step.Type)
	}
	return nil
}

// completeLogin finishes a process whose last step is complete: it is
// kept only for retries, and a login it replaced (?login_id= at start)
// that turned out to be another account is logged out, as the spec says.
func (a *API) completeLogin(p *loginProcess) {
	newID := networkid.UserLoginID(p.step.Complete.UserLoginID)
	p.log.Info().Str("new_login_id", string(newID)).Msg("Login completed")
	a.touch(p, true)
	if p.override == "" || p.override == newID {
		return
	}
	old := p.user.GetLogin(p.override)
	if old == nil {
		return
	}
	p.log.Info().Str("old_login_id", string(p.override)).Msg("Re-login ended as another account; logging out the old login")
	if err := old.Logout(context.WithoutCancel(p.ctx)); err != nil {
		p.log.Warn().Err(err).Str("old_login_id", string(p.override)).Msg("Could not log out the replaced login")
	}
}
