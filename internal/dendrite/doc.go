// Package dendrite builds and runs throwaway Dendrite homeservers for tests,
// the sandbox and benchmarks.
//
// Dendrite is built once from the Apache-2.0 module
// github.com/matrix-org/dendrite at [Version] into a cache directory outside
// the Trestle module, so none of its dependencies ever reach Trestle's go.mod.
// Every [Server] then runs on loopback with a fresh data directory, SQLite
// databases, federation and open registration disabled, rate limiting off and
// a shared registration secret so that [Server.CreateUser] can make accounts.
//
// A typical test:
//
//	srv := dendrite.StartForTest(t, dendrite.Options{
//		AppServiceRegistrations: []string{regPath},
//	})
//	if err := srv.CreateUser(ctx, "alice", "secret", false); err != nil { ... }
//	alice, err := srv.Login(ctx, "alice", "secret")
//
// The helpers only run on Linux: the build cache is guarded with flock(2)
// and the server is tied to its parent with Pdeathsig.
package dendrite
