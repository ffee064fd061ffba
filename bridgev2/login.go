package bridgev2

import "context"

// LoginFlow is one way to log in to the network.
type LoginFlow struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// LoginStepType says what a login step asks of the user. The values and the
// JSON shape of LoginStep follow mautrix's provisioning API, so bridge
// managers written for it work unchanged.
type LoginStepType string

// Login step types.
const (
	LoginStepUserInput      LoginStepType = "user_input"
	LoginStepDisplayAndWait LoginStepType = "display_and_wait"
	LoginStepComplete       LoginStepType = "complete"
)

// LoginInputFieldType says what a field holds, so front ends can pick an
// input widget and know which answers to keep out of chat history.
type LoginInputFieldType string

// Login input field types.
const (
	LoginInputUsername LoginInputFieldType = "username"
	LoginInputPassword LoginInputFieldType = "password"
	LoginInputPhone    LoginInputFieldType = "phone_number"
	LoginInputEmail    LoginInputFieldType = "email"
	LoginInputToken    LoginInputFieldType = "token"
	LoginInputURL      LoginInputFieldType = "url"
	LoginInputCode     LoginInputFieldType = "2fa_code"
	LoginInputSelect   LoginInputFieldType = "select"
)

// IsSecret reports whether answers of this type must not stay in a chat
// room: the bot redacts them as soon as it has read them.
func (t LoginInputFieldType) IsSecret() bool {
	return t == LoginInputPassword || t == LoginInputToken || t == LoginInputCode
}

// LoginInputField is one value the user is asked for.
type LoginInputField struct {
	Type        LoginInputFieldType `json:"type"`
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	// Pattern is a regular expression the answer must match.
	Pattern string `json:"pattern,omitempty"`
	// Options are the allowed answers of a select field.
	Options []string `json:"options,omitempty"`
	// Optional fields may be answered with "-" in chat, or left out over HTTP.
	Optional bool `json:"optional,omitempty"`
}

// LoginUserInputParams lists the fields of a user_input step.
type LoginUserInputParams struct {
	Fields []LoginInputField `json:"fields"`
}

// LoginDisplayAndWaitParams is something to show while waiting (a code, a QR).
type LoginDisplayAndWaitParams struct {
	Type string `json:"type"`
	Data string `json:"data"`
}

// LoginCompleteParams names the login that was created.
type LoginCompleteParams struct {
	UserLoginID string     `json:"user_login_id"`
	UserLogin   *UserLogin `json:"-"`
}

// LoginStep is one step of a login process.
type LoginStep struct {
	Type         LoginStepType              `json:"type"`
	StepID       string                     `json:"step_id"`
	Instructions string                     `json:"instructions"`
	UserInput    *LoginUserInputParams      `json:"user_input,omitempty"`
	Display      *LoginDisplayAndWaitParams `json:"display_and_wait,omitempty"`
	Complete     *LoginCompleteParams       `json:"complete,omitempty"`
}

// LoginProcess is a login in progress, driven by bot commands or the
// provisioning API alike.
type LoginProcess interface {
	// Start returns the first step.
	Start(ctx context.Context) (*LoginStep, error)
	// SubmitUserInput answers a user_input step and returns the next step.
	SubmitUserInput(ctx context.Context, input map[string]string) (*LoginStep, error)
	// Cancel abandons the process.
	Cancel()
}

// LoginProcessWaiter is a process with display_and_wait steps.
type LoginProcessWaiter interface {
	// Wait blocks until the displayed step is done and returns the next step.
	Wait(ctx context.Context) (*LoginStep, error)
}

// FormLogin is a LoginProcess for the most common flow: one form of fields
// whose answers, once checked, become a login. A connector returns it from
// CreateLogin with its fields and a Submit function.
type FormLogin struct {
	User         *User
	Instructions string
	Fields       []LoginInputField
	// Submit checks the answers with the network and returns the login to
	// store, and what the user must still do (shown after "Logged in"), if
	// anything. An error is shown to the user and the form asked again:
	// return an *Error with a sentence they can act on.
	Submit func(ctx context.Context, input map[string]string) (login NewLoginParams, nextSteps string, err error)
}

// Start implements LoginProcess.
func (f *FormLogin) Start(context.Context) (*LoginStep, error) {
	return &LoginStep{Type: LoginStepUserInput, StepID: "form", Instructions: f.Instructions,
		UserInput: &LoginUserInputParams{Fields: f.Fields}}, nil
}

// SubmitUserInput implements LoginProcess.
func (f *FormLogin) SubmitUserInput(ctx context.Context, input map[string]string) (*LoginStep, error) {
	params, next, err := f.Submit(ctx, input)
	if err != nil {
		return nil, err
	}
	login, err := f.User.NewLogin(ctx, params)
	if err != nil {
		return nil, err
	}
	return &LoginStep{Type: LoginStepComplete, StepID: "complete", Instructions: next,
		Complete: &LoginCompleteParams{UserLoginID: string(login.ID), UserLogin: login}}, nil
}

// Cancel implements LoginProcess: nothing is stored before the form is
// answered.
func (f *FormLogin) Cancel() {}
