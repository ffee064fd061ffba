package e2ee

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2/database"
)

// CommitSeal commits what the decryption of an event left to store, as the
// core's next journal write for the event does.
func CommitSeal(ctx context.Context, s *Store, eventID id.EventID) error {
	rows := s.takeSeal(eventID)
	return s.db.Write(ctx, func(ctx context.Context, tx database.Execer) error {
		return s.db.Crypto.PutIn(ctx, tx, rows...)
	})
}
