package trestle_test

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	trestle "github.com/trestle-bridge/trestle"
	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
	"github.com/trestle-bridge/trestle/connectors/twilio"
)

// The Dockerfile and the systemd unit are checked here without a Docker
// engine or systemd: they parse, and they agree with the code they build
// and run.

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	var cont string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasSuffix(line, "\\") {
			cont += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		lines = append(lines, cont+line)
		cont = ""
	}
	return lines
}

func TestDockerfileBuildsAStaticNonRootImageWithDataVolume(t *testing.T) {
	known := map[string]bool{"FROM": true, "WORKDIR": true, "COPY": true, "RUN": true, "ARG": true, "VOLUME": true,
		"USER": true, "EXPOSE": true, "ENTRYPOINT": true, "CMD": true, "ENV": true, "LABEL": true}
	var stages, user, volume, entrypoint, build string
	for i, line := range readLines(t, "Dockerfile") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		if !known[instr] {
			t.Fatalf("Dockerfile line %d: unknown instruction %q", i+1, instr)
		}
		switch instr {
		case "FROM":
			stages += rest + "\n"
		case "USER":
			user = rest
		case "VOLUME":
			volume = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "RUN":
			if strings.Contains(rest, "go build") {
				build = rest
			}
		}
	}
	if strings.Count(stages, "\n") < 2 {
		t.Error("the Dockerfile is not multi-stage")
	}
	if !strings.Contains(user, "nonroot") {
		t.Errorf("the image runs as %q, want a non-root user", user)
	}
	if !strings.Contains(volume, "/data") || !strings.Contains(entrypoint, "/data/config.yaml") {
		t.Errorf("config must live in the /data volume: VOLUME %s, ENTRYPOINT %s", volume, entrypoint)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/trestle-twilio"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build step lacks %s: %s", want, build)
		}
	}
	// The version stamps must name real variables, or -X silently does nothing.
	pkg := reflect.TypeOf(bridgemain.App{}).PkgPath()
	for _, v := range []string{"Version", "Commit"} {
		if !strings.Contains(build, "-X "+pkg+"."+v+"=") {
			t.Errorf("the build step does not stamp %s.%s", pkg, v)
		}
	}
	_ = bridgemain.Version + bridgemain.Commit
}

func TestSystemdUnitRunsTheBridgeWithItsConfig(t *testing.T) {
	sections := map[string]map[string]string{}
	var current string
	for i, line := range readLines(t, "contrib/trestle-twilio.service") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			current = strings.Trim(line, "[]")
			sections[current] = map[string]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || current == "" {
				t.Fatalf("unit line %d is not key=value in a section: %q", i+1, line)
			}
			sections[current][key] = value
		}
	}
	for _, s := range []string{"Unit", "Service", "Install"} {
		if sections[s] == nil {
			t.Fatalf("unit lacks [%s]", s)
		}
	}
	svc := sections["Service"]
	if !strings.Contains(svc["ExecStart"], "trestle-twilio -c ") {
		t.Errorf("ExecStart %q does not run trestle-twilio with a config", svc["ExecStart"])
	}
	if svc["User"] == "" || svc["User"] == "root" {
		t.Errorf("the service runs as %q", svc["User"])
	}
	if svc["KillSignal"] != "SIGTERM" || svc["TimeoutStopSec"] == "" {
		t.Error("the unit must stop with SIGTERM and give the bridge time to journal in-flight work")
	}
}

func TestExampleConfigCarriesTheConnectorsDocumentedSection(t *testing.T) {
	if !strings.HasSuffix(string(trestle.ExampleConfig), twilio.ExampleConfig) {
		t.Fatal("example-config.yaml must end with twilio.ExampleConfig verbatim; paste it again")
	}
}

func TestConfigurationReferenceDocumentsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(trestle.ExampleConfig, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n.Kind != yaml.MappingNode || prefix == "bridge.permissions" {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			if !strings.Contains(string(doc), "`"+key+"`") {
				t.Errorf("docs/configuration.md does not document %s", key)
			}
			walk(key, n.Content[i+1])
		}
	}
	walk("", root.Content[0])
}
