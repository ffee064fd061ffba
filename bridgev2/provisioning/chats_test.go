package provisioning_test

import (
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

func TestWhoami(t *testing.T) {
	e := newEnv(t, envOptions{})
	body := expect(t, e.get(alice, "v3/whoami"), http.StatusOK, "")
	network := body["network"].(map[string]any)
	if network["displayname"] != "Test network" || network["network_id"] != "testnet" || network["network_url"] != "https://example.com" {
		t.Fatalf("network: %v", network)
	}
	if body["homeserver"] != "example.com" || body["bridge_bot"] != "@bridgebot:example.com" || body["command_prefix"] != "!test" {
		t.Fatalf("bridge info: %v", body)
	}
	if _, ok := body["management_room"]; ok {
		t.Fatalf("management_room before there is one: %v", body)
	}
	if logins := body["logins"].([]any); len(logins) != 0 {
		t.Fatalf("logins: %v", logins)
	}

	room := e.h.ManagementRoom(alice)
	e.login(alice, "alicenet")
	body = expect(t, e.get(alice, "v3/whoami"), http.StatusOK, "")
	if body["management_room"] != string(room) {
		t.Fatalf("management_room %v, want %s", body["management_room"], room)
	}
	logins := body["logins"].([]any)
	if len(logins) != 1 {
		t.Fatalf("logins: %v", logins)
	}
	l := logins[0].(map[string]any)
	state := l["state"].(map[string]any)
	if l["id"] != "alicenet" || l["name"] != "alicenet" || state["state_event"] != "CONNECTED" || l["state_event"] != "CONNECTED" {
		t.Fatalf("login: %v", l)
	}
	if ts, _ := state["timestamp"].(float64); ts < 1e9 || ts > 1e11 {
		t.Fatalf("timestamp %v is not in Unix seconds", state["timestamp"])
	}

	// The state is how admins see trouble: errors and sentences show.
	login := e.h.Bridge().GetLogin("alicenet")
	login.SetState(e.h.Ctx(), bridgev2.BridgeState{StateEvent: bridgev2.StateBadCredentials, Error: "testnet-401", Message: "The token was revoked."})
	state = expect(t, e.get(alice, "v3/whoami"), http.StatusOK, "")["logins"].([]any)[0].(map[string]any)["state"].(map[string]any)
	if state["state_event"] != "BAD_CREDENTIALS" || state["error"] != "testnet-401" || state["message"] != "The token was revoked." {
		t.Fatalf("state: %v", state)
	}

	// Bob sees none of it.
	body = expect(t, e.get(bob, "v3/whoami"), http.StatusOK, "")
	if len(body["logins"].([]any)) != 0 || body["management_room"] != nil {
		t.Fatalf("bob's whoami: %v", body)
	}
}

func TestResolveIdentifier(t *testing.T) {
	e := newEnv(t, envOptions{})
	expect(t, e.get(alice, "v3/resolve_identifier/carol"), http.StatusNotFound, "M_NOT_FOUND")
	e.login(alice, "alicenet")
	e.login(bob, "bobnet")

	body := expect(t, e.get(alice, "v3/resolve_identifier/carol"), http.StatusOK, "")
	if body["id"] != "carol" || body["name"] != "Test user carol" || body["mxid"] != "@test_carol:example.com" {
		t.Fatalf("resolved: %v", body)
	}
	if _, ok := body["dm_room_mxid"]; ok {
		t.Fatalf("dm_room_mxid before the chat exists: %v", body)
	}
	// The connector's refusal, in its own words, as the spec's 404.
	body = expect(t, e.get(alice, "v3/resolve_identifier/Not%20Valid"), http.StatusNotFound, "M_NOT_FOUND")
	if body["error"] != `"Not Valid" is not a valid test network user name.` {
		t.Fatalf("error: %v", body["error"])
	}
	// Only through one's own logins.
	expect(t, e.get(alice, "v3/resolve_identifier/carol?login_id=bobnet"), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, e.get(alice, "v3/resolve_identifier/carol?login_id=alicenet"), http.StatusOK, "")
}

func TestCreateDM(t *testing.T) {
	e := newEnv(t, envOptions{})
	expect(t, e.post(alice, "v3/create_dm/carol", nil), http.StatusNotFound, "M_NOT_FOUND")
	e.login(alice, "alicenet")
	e.login(bob, "bobnet")
	expect(t, e.post(alice, "v3/create_dm/carol?login_id=bobnet", nil), http.StatusNotFound, "M_NOT_FOUND")

	body := expect(t, e.post(alice, "v3/create_dm/carol", nil), http.StatusOK, "")
	room := id.RoomID(str(body["dm_room_mxid"]))
	if body["id"] != "carol" || body["mxid"] != "@test_carol:example.com" || room == "" {
		t.Fatalf("created: %v", body)
	}
	if m := e.h.Matrix.Membership(room, alice); m != "invite" {
		t.Fatalf("alice's membership in the new DM: %q", m)
	}
	// Asking again opens the same chat, and resolve now knows the room.
	if again := expect(t, e.post(alice, "v3/create_dm/carol", nil), http.StatusOK, ""); again["dm_room_mxid"] != string(room) {
		t.Fatalf("second create_dm: %v", again)
	}
	if resolved := expect(t, e.get(alice, "v3/resolve_identifier/carol"), http.StatusOK, ""); resolved["dm_room_mxid"] != string(room) {
		t.Fatalf("resolve after create_dm: %v", resolved)
	}
	body = expect(t, e.post(alice, "v3/create_dm/Not%20Valid", nil), http.StatusNotFound, "M_NOT_FOUND")
	if body["error"] != `"Not Valid" is not a valid test network user name.` {
		t.Fatalf("error: %v", body["error"])
	}
}

func TestContacts(t *testing.T) {
	e := newEnv(t, envOptions{})
	expect(t, e.get(alice, "v3/contacts"), http.StatusNotFound, "M_NOT_FOUND")
	e.login(alice, "alicenet")
	expect(t, e.post(alice, "v3/create_dm/dave", nil), http.StatusOK, "")
	contacts := expect(t, e.get(alice, "v3/contacts"), http.StatusOK, "")["contacts"].([]any)
	if len(contacts) != 2 {
		t.Fatalf("contacts: %v", contacts)
	}
	carol, dave := contacts[0].(map[string]any), contacts[1].(map[string]any)
	if carol["id"] != "carol" || carol["name"] != "Test user carol" || carol["identifiers"].([]any)[0] != "testnet:carol" || carol["dm_room_mxid"] != nil {
		t.Fatalf("carol: %v", carol)
	}
	if dave["mxid"] != "@test_dave:example.com" || str(dave["dm_room_mxid"]) == "" {
		t.Fatalf("dave: %v", dave)
	}
	expect(t, e.get(alice, "v3/contacts?login_id=nobody"), http.StatusNotFound, "M_NOT_FOUND")
}

func TestSearchUsersFindsContactsByNameAndWhatTheQueryResolvesTo(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login(alice, "alicenet")
	names := func(body map[string]any) []string {
		var out []string
		for _, r := range body["results"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
		return out
	}
	// "user" is no valid user name, but both contacts are called "Test user …".
	if got := names(expect(t, e.post(alice, "v3/search_users", map[string]string{"query": "User"}), http.StatusOK, "")); !slices.Equal(got, []string{"carol", "dave"}) {
		t.Fatalf("search for \"User\": %v", got)
	}
	// A query that is a user of the network comes first, found once.
	if got := names(expect(t, e.post(alice, "v3/search_users", map[string]string{"query": "dave"}), http.StatusOK, "")); !slices.Equal(got, []string{"dave"}) {
		t.Fatalf("search for dave: %v", got)
	}
	if got := names(expect(t, e.post(alice, "v3/search_users", map[string]string{"query": "erin"}), http.StatusOK, "")); !slices.Equal(got, []string{"erin"}) {
		t.Fatalf("search for erin, no contact yet: %v", got)
	}
	if got := expect(t, e.post(alice, "v3/search_users", map[string]string{"query": "Nobody Here"}), http.StatusOK, "")["results"].([]any); len(got) != 0 {
		t.Fatalf("search for nobody: %v", got)
	}
	expect(t, e.post(alice, "v3/search_users", map[string]string{"query": " "}), http.StatusBadRequest, "M_MISSING_PARAM")
}

func TestUnsupportedChatFeatures(t *testing.T) {
	// Plain testnet cannot list contacts.
	e := newEnv(t, envOptions{plainTestnet: true})
	e.login(alice, "alicenet")
	expect(t, e.get(alice, "v3/contacts"), http.StatusNotImplemented, "M_UNRECOGNIZED")
	expect(t, e.post(alice, "v3/search_users", map[string]string{"query": "carol"}), http.StatusNotImplemented, "M_UNRECOGNIZED")
	expect(t, e.post(bob, "v3/search_users", map[string]string{"query": "carol"}), http.StatusNotFound, "M_NOT_FOUND")

	// A client that cannot start groups.
	e = newEnv(t, envOptions{textOnly: true})
	e.login(alice, "alicenet")
	expect(t, e.post(alice, "v3/create_group/group", map[string]any{"participants": []string{"carol", "dave"}}), http.StatusNotImplemented, "M_UNRECOGNIZED")
}

func TestCreateGroup(t *testing.T) {
	e := newEnv(t, envOptions{})
	expect(t, e.post(alice, "v3/create_group/group", map[string]any{"participants": []string{"carol"}}), http.StatusNotFound, "M_NOT_FOUND")
	e.login(alice, "alicenet")

	body := expect(t, e.post(alice, "v3/create_group/group", map[string]any{
		"participants": []string{"carol", "dave"}, "name": map[string]string{"name": "Book club"},
	}), http.StatusOK, "")
	room := id.RoomID(str(body["mxid"]))
	if room == "" || str(body["id"]) == "" {
		t.Fatalf("create_group: %v", body)
	}
	var created *bridgetest.FakeRoom
	for _, r := range e.h.Matrix.Rooms() {
		if r.ID == room {
			created = r
		}
	}
	if created == nil || created.Request.Name != "Book club" || created.Request.IsDirect {
		t.Fatalf("group room: %+v", created)
	}
	for _, member := range []networkid.UserID{"carol", "dave"} {
		if got := e.h.Matrix.Membership(room, e.h.Matrix.GhostUserID(member)); got != "join" {
			t.Errorf("%s's ghost is %q in the group room, want join", member, got)
		}
	}
	if got := e.h.Matrix.Membership(room, alice); got != "invite" {
		t.Errorf("alice is %q in the group room, want invite", got)
	}

	// What the network refuses comes back as a 400 with its sentence.
	body = expect(t, e.post(alice, "v3/create_group/group", map[string]any{"participants": []string{"carol", "Not Valid"}}), http.StatusBadRequest, "M_INVALID_PARAM")
	if body["error"] != `"Not Valid" is not a valid test network user name.` {
		t.Fatalf("error: %v", body["error"])
	}
	expect(t, e.post(alice, "v3/create_group/group", map[string]any{}), http.StatusBadRequest, "M_MISSING_PARAM")
	expect(t, e.post(alice, "v3/create_group/group?login_id=nobody", map[string]any{"participants": []string{"carol"}}), http.StatusNotFound, "M_NOT_FOUND")
}

func TestCapabilitiesSayWhatTheLoginsNetworkSupports(t *testing.T) {
	e := newEnv(t, envOptions{})
	expect(t, e.get(alice, "v3/capabilities"), http.StatusNotFound, "M_NOT_FOUND")
	e.login(alice, "alicenet")
	features := expect(t, e.get(alice, "v3/capabilities"), http.StatusOK, "")["room_features"].(map[string]any)
	// testnet edits, reacts and deletes.
	for _, f := range []string{"edit", "reaction", "delete"} {
		if features[f] != float64(2) {
			t.Errorf("%s is %v, want fully supported (2): %v", f, features[f], features)
		}
	}

	e = newEnv(t, envOptions{textOnly: true})
	e.login(alice, "alicenet")
	features = expect(t, e.get(alice, "v3/capabilities"), http.StatusOK, "")["room_features"].(map[string]any)
	for _, f := range []string{"edit", "reaction", "delete"} {
		if features[f] != float64(-2) {
			t.Errorf("a text-only client: %s is %v, want rejected (-2)", f, features[f])
		}
	}
}
