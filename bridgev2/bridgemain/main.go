package bridgemain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

// Version and Commit are stamped in at build time with
// -ldflags "-X github.com/trestle-bridge/trestle/bridgev2/bridgemain.Version=v1.0.0 -X ...Commit=abc123".
var (
	Version = "dev"
	Commit  = ""
)

// Exit codes, so supervisors and scripts can tell failures apart.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitConfigWrote = 3
)

// Main runs a bridge binary for the connector and exits. exampleConfig is
// the full example config file, written out when none exists yet.
func Main(connector bridgev2.NetworkConnector, exampleConfig []byte) {
	os.Exit(Run(os.Args[1:], connector, exampleConfig, os.Stdout, os.Stderr))
}

// Run is Main without the exit, for tests.
func Run(args []string, connector bridgev2.NetworkConnector, exampleConfig []byte, stdout, stderr io.Writer) int {
	name := connector.Info().ID
	fs := flag.NewFlagSet("trestle-"+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("c", "config.yaml", "path to the config file")
	generate := fs.Bool("g", false, "generate the appservice registration (with fresh tokens stored back into the config) and exit")
	registrationPath := fs.String("r", "registration.yaml", "path of the registration file written by -g")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: trestle-%s [-c config.yaml] [-g -r registration.yaml] [--version]\n\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, VersionString(connector))
		return exitOK
	}

	data, err := os.ReadFile(*configPath)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(*configPath, exampleConfig, 0o600); err != nil {
			fmt.Fprintf(stderr, "No config at %s, and writing the example there failed: %v\n", *configPath, err)
			return exitError
		}
		fmt.Fprintf(stderr, "No config file was found, so the example was written to %s.\n"+
			"Edit at least homeserver.address, homeserver.domain, appservice.address, appservice.public_address,\n"+
			"bridge.permissions and the network section, then run with -g to generate the registration.\n", *configPath)
		return exitConfigWrote
	} else if err != nil {
		fmt.Fprintf(stderr, "Could not read the config: %v\n", err)
		return exitError
	}

	if *generate {
		if err := GenerateRegistration(*configPath, *registrationPath); err != nil {
			fmt.Fprintf(stderr, "Could not generate the registration: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stdout, "Registration written to %s and tokens stored in %s.\n"+
			"Add the registration to your homeserver (Synapse: app_service_config_files; Dendrite:\n"+
			"app_service_api.config_files; Conduit: register it with the admin room), then start the bridge.\n",
			*registrationPath, *configPath)
		return exitOK
	}

	cfg, err := bridgeconfig.Parse(data)
	if err != nil {
		fmt.Fprintf(stderr, "Bad config in %s: %v\n", *configPath, err)
		return exitError
	}
	log, err := NewLogger(cfg.Logging, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "Bad config in %s: %v\n", *configPath, err)
		return exitError
	}
	return serve(cfg, connector, log)
}

func serve(cfg *bridgeconfig.Config, connector bridgev2.NetworkConnector, log zerolog.Logger) int {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if path := os.Getenv("TRESTLE_CPU_PROFILE"); path != "" {
		// For performance work: profile the whole run of the real binary.
		if stop, err := startCPUProfile(path); err != nil {
			log.Warn().Err(err).Msg("Could not start the CPU profile")
		} else {
			defer stop()
		}
	}
	log.Info().Str("version", VersionString(connector)).Msg("Starting bridge")
	app, err := Assemble(ctx, cfg, connector, Options{Log: log, Version: Version})
	if err != nil {
		log.Error().Err(err).Msg("Could not initialise the bridge")
		return exitError
	}
	if err := app.Start(ctx); err != nil {
		log.Error().Err(err).Msg("Could not start the bridge")
		app.Stop(context.Background())
		return exitError
	}
	select {
	case <-ctx.Done():
	case <-app.Bridge.LostLeadership():
		// Another process delivers now; this one must not, and starts
		// again as a standby once its supervisor restarts it.
		app.Stop(context.Background())
		return exitError
	}
	log.Info().Msg("Shutting down")
	stopCtx, stopCancel := context.WithTimeout(context.Background(), cfg.Bridge.ShutdownTimeout+15*time.Second)
	defer stopCancel()
	app.Stop(stopCtx)
	return exitOK
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// VersionString is the version line shown by --version and the logs.
func VersionString(connector bridgev2.NetworkConnector) string {
	commit := Commit
	if commit == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					commit = s.Value
				}
			}
		}
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("trestle-%s %s (commit %s)", connector.Info().ID, Version, commit)
}

// NewLogger builds the zerolog logger from the logging section.
func NewLogger(cfg bridgeconfig.Logging, out io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil || level == zerolog.NoLevel {
		return zerolog.Logger{}, fmt.Errorf("config key logging.level must be trace, debug, info, warn or error, not %q", cfg.Level)
	}
	w := out
	if cfg.Format == "pretty" {
		w = zerolog.ConsoleWriter{Out: out, TimeFormat: time.DateTime}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
