package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/dendrite"
	"github.com/trestle-bridge/trestle/internal/rig"
)

const (
	// Localpart is the sandbox user's Matrix localpart: @me:localhost.
	Localpart = "me"
	// DefaultTwilioNumber is the sandbox user's simulated Twilio number, from
	// the 555-01xx range reserved for fiction.
	DefaultTwilioNumber = "+14155550100"
	// stateFile keeps what a sandbox with a kept directory reuses next time.
	stateFile = "sandbox.json"
	// stopTimeout bounds each shutdown step that talks to another process.
	stopTimeout = 5 * time.Second
)

// Options configure a sandbox.
type Options struct {
	// Dir keeps the sandbox's state (the Matrix account and rooms, the
	// bridge's database, the simulated Twilio credentials, logs) across
	// runs. Empty means a fresh temporary directory that Close removes.
	Dir string
	// Listen is the loopback address of the phone page, DefaultListen when
	// empty. Port 0 picks a free port, and so does a taken port.
	Listen string
	// Out receives progress lines while starting; nil discards them.
	Out io.Writer
}

// Sandbox is the whole bridge running on this machine for someone without a
// Twilio account: Dendrite, the trestle-twilio binary and the Twilio
// simulator (see rig.StartEnv), a Matrix user logged in to the bridge with a
// simulated Twilio number, and the phone page that plays the phones texting
// that number.
type Sandbox struct {
	// Env is the running environment.
	Env *rig.Env
	// Dir holds the state and the logs.
	Dir string
	// PageURL is the phone page, e.g. http://127.0.0.1:8088/.
	PageURL string
	// ListenNote is set when the requested page port was taken.
	ListenNote string
	// HomeserverURL is what to give a Matrix client as the homeserver.
	HomeserverURL string
	// UserID and Password are the sandbox user's Matrix login.
	UserID   id.UserID
	Password string
	// AccountSID and AuthToken are the simulated Twilio account's
	// credentials, which the user can give the bot's `login` themselves.
	AccountSID string
	AuthToken  string
	// TwilioNumber is the account's number, logged in to the bridge.
	TwilioNumber string
	// ManagementRoom is the user's DM with the bridge bot.
	ManagementRoom id.RoomID
	// LoginReply is what the bot answered to the automatic login.
	LoginReply string

	ownDir   bool
	listener net.Listener
	httpSrv  *http.Server
	serving  bool
	cancel   context.CancelFunc // ends long polls and the simulator watch
	matrix   *matrixSide
	once     sync.Once
	progress *progress
}

// savedState is what a kept directory remembers between runs, so that the
// same Matrix login and the same Twilio credentials work again.
type savedState struct {
	MatrixPassword string    `json:"matrix_password"`
	AccountSID     string    `json:"twilio_account_sid"`
	AuthToken      string    `json:"twilio_auth_token"`
	TwilioNumber   string    `json:"twilio_number"`
	ManagementRoom id.RoomID `json:"management_room,omitempty"`
}

// Start builds what is missing (Dendrite on the first run, the bridge
// binary), starts everything on loopback, creates or reuses the Matrix user
// and the simulated Twilio account, logs the account in to the bridge through
// the bot, and serves the phone page. Close stops it all; Start cleans up
// after itself when it fails.
func Start(ctx context.Context, opts Options) (s *Sandbox, err error) {
	started := time.Now()
	s = &Sandbox{progress: &progress{out: opts.Out}}
	if s.progress.out == nil {
		s.progress.out = io.Discard
	}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if err := checkCheckout(); err != nil {
		return s, err
	}
	listen := opts.Listen
	if listen == "" {
		listen = DefaultListen
	}
	if s.listener, s.ListenNote, err = listenLoopback(listen); err != nil {
		return s, err
	}
	s.PageURL = "http://" + s.listener.Addr().String() + "/"
	if err := s.openDir(opts.Dir); err != nil {
		return s, err
	}
	saved, err := loadState(s.Dir)
	if err != nil {
		return s, err
	}

	if err := buildBinaries(ctx, s.progress); err != nil {
		return s, err
	}
	step := s.progress.step("Starting the Twilio simulator and Dendrite")
	s.Env, err = rig.StartEnv(ctx, rig.EnvOptions{
		Dir: s.Dir,
		// The bridge starts below, once the simulator has the account: a
		// kept directory's bridge reconnects its login straight away.
		NoBridge:    true,
		ConfigEdits: map[string]any{"bridge.shutdown_timeout": "5s"},
	})
	if err != nil {
		return s, err
	}
	step.done()
	s.HomeserverURL = s.Env.Dendrite.URL

	acct, err := s.Env.Sim.AddAccount(saved.AccountSID, saved.AuthToken)
	if err != nil {
		return s, fmt.Errorf("creating the simulated Twilio account: %w", err)
	}
	s.AccountSID, s.AuthToken = acct.SID(), acct.AuthToken()
	s.TwilioNumber = orElse(saved.TwilioNumber, DefaultTwilioNumber)
	if _, err := acct.AddNumber(s.TwilioNumber, twiliosim.Capabilities{SMS: true, MMS: true}); err != nil {
		return s, fmt.Errorf("giving the simulated account a number: %w", err)
	}

	step = s.progress.step("Starting the bridge (trestle-twilio)")
	if s.Env.Bridge, err = rig.StartBridge(ctx, s.Env.Binary, s.Env.Files, filepath.Join(s.Dir, "bridge.log")); err != nil {
		return s, err
	}
	step.done()

	step = s.progress.step("Logging in to Matrix as @" + Localpart + ":" + s.Env.Dendrite.ServerName)
	cli, err := s.matrixLogin(ctx, saved.MatrixPassword)
	if err != nil {
		return s, err
	}
	// Saved at once: a kept directory must not forget the password of an
	// account it created, even if the rest of the start fails.
	if err := s.saveState(); err != nil {
		return s, err
	}
	cfg, err := s.Env.Files.LoadConfig()
	if err != nil {
		return s, err
	}
	prefix, suffix, _ := strings.Cut(cfg.AppService.UsernameTemplate, "{{.}}")
	n := newNotifier()
	s.matrix, err = newMatrixSide(cli, id.NewUserID(cfg.AppService.Bot.Username, s.Env.Dendrite.ServerName),
		ghostNames{prefix: prefix, suffix: suffix, server: s.Env.Dendrite.ServerName}, n)
	if err != nil {
		return s, err
	}
	if err := s.matrix.start(ctx); err != nil {
		return s, err
	}
	step.done()

	step = s.progress.step("Logging in " + s.TwilioNumber + " through the bridge bot (login, Account SID, auth token)")
	if s.ManagementRoom, err = s.matrix.managementRoom(ctx, saved.ManagementRoom); err != nil {
		return s, err
	}
	if s.LoginReply, err = s.matrix.loginThroughBot(ctx, s.ManagementRoom, s.AccountSID, s.AuthToken); err != nil {
		return s, fmt.Errorf("logging in to the bridge through the bot: %w", err)
	}
	step.done()
	if saved.AccountSID != "" {
		// The bridge kept the login, with the number's SID from the last
		// run; the simulator starts empty and gives the number a new SID.
		s.progress.printf("  (The bot may first say %s is no longer a number of the account: the simulator started afresh\n"+
			"  and gave the number a new SID. Logging in again, as just done, is the cure.)\n", s.TwilioNumber)
	}

	if err := s.saveState(); err != nil {
		return s, err
	}

	s.serve(acct, n)
	s.progress.printf("Ready in %s.\n", time.Since(started).Round(100*time.Millisecond))
	return s, nil
}

// checkCheckout makes sure the bridge can be built: rig.BridgeBinary builds
// ./cmd/trestle-twilio of the module around the working directory.
func checkCheckout() error {
	root, err := rig.ModuleRoot()
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "cmd", "trestle-twilio", "main.go"))
	}
	if err != nil {
		return fmt.Errorf("run the sandbox from inside a Trestle checkout (go run ./cmd/trestle-sandbox): it builds the bridge from ./cmd/trestle-twilio: %w", err)
	}
	return nil
}

// openDir uses dir, or a new temporary directory when dir is empty.
func (s *Sandbox) openDir(dir string) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "trestle-sandbox-")
		if err != nil {
			return fmt.Errorf("creating the sandbox directory: %w", err)
		}
		s.Dir, s.ownDir = tmp, true
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("sandbox directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("creating the sandbox directory: %w", err)
	}
	s.Dir = abs
	return nil
}

func loadState(dir string) (savedState, error) {
	var st savedState
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		return st, fmt.Errorf("reading the sandbox state %s (delete it to start afresh): %w", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

// saveState records what the next run in the same directory reuses.
func (s *Sandbox) saveState() error {
	data, err := json.MarshalIndent(savedState{
		MatrixPassword: s.Password,
		AccountSID:     s.AccountSID,
		AuthToken:      s.AuthToken,
		TwilioNumber:   s.TwilioNumber,
		ManagementRoom: s.ManagementRoom,
	}, "", "  ")
	if err != nil {
		return err
	}
	// It holds passwords, if only for a throwaway homeserver.
	if err := os.WriteFile(filepath.Join(s.Dir, stateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the sandbox state: %w", err)
	}
	return nil
}

// buildBinaries builds Dendrite (into its cache, first run only) and the
// bridge at the same time, telling the user what takes so long.
func buildBinaries(ctx context.Context, p *progress) error {
	var wg sync.WaitGroup
	var dendriteErr, bridgeErr error
	cached := dendriteCached()
	if cached {
		p.printf("Dendrite %s: already built.\n", dendrite.Version)
	} else {
		dir, _ := dendrite.CacheDir()
		p.printf("Building Dendrite %s into %s: first run only, it takes 2-3 minutes...\n", dendrite.Version, dir)
	}
	p.printf("Building the bridge (go build ./cmd/trestle-twilio)...\n")
	started := time.Now()
	wg.Go(func() {
		if _, dendriteErr = dendrite.EnsureBinaries(ctx); dendriteErr == nil && !cached {
			p.printf("  Dendrite built (%s).\n", time.Since(started).Round(time.Second))
		}
	})
	wg.Go(func() {
		if _, bridgeErr = rig.BridgeBinary(ctx); bridgeErr == nil {
			p.printf("  Bridge built (%s).\n", time.Since(started).Round(time.Second))
		}
	})
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	// A cold build is silent for minutes; say now and then that it is alive.
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			if dendriteErr != nil {
				return fmt.Errorf("building Dendrite: %w", dendriteErr)
			}
			if bridgeErr != nil {
				return fmt.Errorf("building the bridge: %w", bridgeErr)
			}
			return nil
		case <-tick.C:
			p.printf("  ...still building (%s)\n", time.Since(started).Round(time.Second))
		}
	}
}

// dendriteCached guesses whether Dendrite is built already, only to choose
// the message; dendrite.EnsureBinaries decides for real.
func dendriteCached() bool {
	dir, err := dendrite.CacheDir()
	if err != nil {
		return false
	}
	_, err = os.Stat(dendrite.Binaries{Dir: dir}.Path("dendrite"))
	return err == nil
}

// matrixLogin logs the sandbox user in, creating the account first when the
// homeserver does not know it (a new directory, or a kept one whose
// homeserver data was deleted). An empty password means a new account.
func (s *Sandbox) matrixLogin(ctx context.Context, password string) (*mautrix.Client, error) {
	if password != "" {
		cli, err := s.passwordLogin(ctx, password)
		if !errors.Is(err, mautrix.MForbidden) {
			s.Password = password
			return cli, err
		}
	} else {
		password = randomPassword()
	}
	if err := s.Env.Dendrite.CreateUser(ctx, Localpart, password, false); err != nil {
		return nil, err
	}
	s.Password = password
	return s.passwordLogin(ctx, password)
}

// passwordLogin opens a session (a device named after the page) for the
// sandbox user.
func (s *Sandbox) passwordLogin(ctx context.Context, password string) (*mautrix.Client, error) {
	cli, err := s.Env.Dendrite.LoginDevice(ctx, Localpart, password, "Trestle sandbox page")
	if err != nil {
		return nil, err
	}
	s.UserID = cli.UserID
	return cli, nil
}

func randomPassword() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// serve starts the page on the listener opened at the start.
func (s *Sandbox) serve(acct *twiliosim.Account, n *notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	phone := newPhoneSide(s.Env.Sim, acct, s.TwilioNumber, n)
	go phone.watch(ctx)
	info := pageInfo{TwilioNumber: s.TwilioNumber, MatrixUser: s.UserID, Homeserver: s.HomeserverURL, AccountSID: s.AccountSID}
	s.httpSrv = newHTTPServer(newPageHandler(info, phone, s.matrix))
	s.httpSrv.BaseContext = func(net.Listener) context.Context { return ctx }
	s.serving = true
	go func() {
		// Serve returns once Close shuts the server down; nothing to report.
		_ = s.httpSrv.Serve(s.listener)
	}()
}

// Close stops the page, the Matrix client, the bridge, Dendrite and the
// simulator, and waits until they are gone; a temporary directory is
// removed. It is safe to call more than once.
func (s *Sandbox) Close() {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel() // long polls answer now instead of in 25 s
		}
		if s.serving {
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				_ = s.httpSrv.Close()
			}
			cancel()
		} else if s.listener != nil {
			_ = s.listener.Close()
		}
		if s.matrix != nil {
			s.matrix.stop()
			// Each run logs in anew; a kept homeserver should not collect
			// a device per run.
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			_, _ = s.matrix.cli.Logout(ctx)
			cancel()
		}
		if s.Env != nil {
			s.Env.Close()
		}
		if s.ownDir && s.Dir != "" {
			_ = os.RemoveAll(s.Dir)
		}
	})
}

// PrintBanner tells the user how to use the running sandbox.
func (s *Sandbox) PrintBanner(w io.Writer) {
	kept := "kept (-dir)"
	if s.ownDir {
		kept = "removed when you stop; use -dir to keep it"
	}
	fmt.Fprintf(w, `
Trestle sandbox: Matrix <-> bridge <-> simulated Twilio, all on this machine.

  Phone page        %s
                    Text your Twilio number from pretend phones and watch the
                    Matrix side of the conversation in the same tab.
`, s.PageURL)
	if s.ListenNote != "" {
		fmt.Fprintf(w, "                    (%s)\n", s.ListenNote)
	}
	fmt.Fprintf(w, `
  Matrix client     homeserver %s  (e.g. Element Desktop: Sign in > Edit)
                    username   %s  (or just %q)
                    password   %s

  Your Twilio number %s, already logged in to the bridge (simulated).
  To try the login yourself, send "login" to the bot in your DM with it:
                    Account SID %s
                    auth token  %s
                    then "-" for the three optional questions.

  State and logs    %s (%s)
                    bridge.log, dendrite/dendrite.log

Ctrl-C to stop.
`, s.HomeserverURL, s.UserID, Localpart, s.Password, s.TwilioNumber, s.AccountSID, s.AuthToken, s.Dir, kept)
}

// Run is the trestle-sandbox command: it starts a sandbox, prints how to use
// it, and stops it when ctx ends (Ctrl-C). An interrupted start is not an
// error. As the only sandbox of its process, it also removes the bridge
// binary it built.
func Run(ctx context.Context, opts Options) error {
	defer rig.CleanupBinary()
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintln(out, "Starting the Trestle sandbox...")
	s, err := Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(out, "Interrupted; everything started so far has been stopped.")
			return nil
		}
		return err
	}
	s.PrintBanner(out)
	<-ctx.Done()
	fmt.Fprintln(out, "\nStopping the page, the bridge, Dendrite and the simulator...")
	s.Close()
	fmt.Fprintln(out, "Stopped.")
	return nil
}

// progress prints startup progress; builds run concurrently, so lines are
// written under a lock.
type progress struct {
	mu  sync.Mutex
	out io.Writer
}

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

// step prints what is starting; done adds how long it took.
func (p *progress) step(what string) *progressStep {
	p.printf("%s...\n", what)
	return &progressStep{p: p, started: time.Now()}
}

type progressStep struct {
	p       *progress
	started time.Time
}

func (s *progressStep) done() {
	s.p.printf("  done (%s).\n", time.Since(s.started).Round(100*time.Millisecond))
}
