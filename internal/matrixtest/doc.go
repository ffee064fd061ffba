// Package matrixtest drives a real Matrix account as the human user in
// end-to-end tests of the bridge.
//
// A [Client] wraps a logged-in mautrix client, keeps a /sync loop running in
// the background and records every timeline event, ephemeral event and invite
// it sees. Tests then act and wait with deadlines instead of sleeping:
//
//	alice := matrixtest.StartForTest(t, aliceClient, matrixtest.Options{})
//	room := alice.DM(bot)
//	alice.Send(room, "help")
//	alice.WaitForMessage(room, bot, "Commands:")
//
// StartForTest returns a [T], whose methods fail the test on error and take
// their deadline from [T.Timeout]. The same operations exist on [Client] with
// a context and an error, for code that is not a test body: the sandbox's
// Matrix pane is such a client too.
//
// Every wait sees the events that arrived before it started, so there is no
// race between sending a request and starting to wait for its effect. To wait
// only for what follows a given event (typically the one just sent), use the
// After variants.
package matrixtest
