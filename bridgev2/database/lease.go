package database

import (
	"context"
	"errors"
	"time"
)

// leaseName is the one lease of a bridge's database.
const leaseName = "bridge"

// ErrFenced is returned by a fenced write when this process no longer holds
// the leader lease it was made with.
var ErrFenced = errors.New("this process no longer holds the leader lease")

// Lease is a hold of the leader lease.
type Lease struct {
	Holder string
	Epoch  int64
}

// LeaseQuery reads and writes the leader_lease table. Its statements run
// outside the group-commit writer, so that a renewal never waits behind a
// batch, and compare times on the database's clock, so that processes on
// machines whose clocks differ agree on when a lease ran out.
type LeaseQuery struct{ d *Database }

// nowMillis is the database clock in Unix milliseconds.
func (q *LeaseQuery) now() string {
	if q.d.Dialect == SQLite {
		return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
	}
	return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
}

// Acquire takes the lease for holder for ttl if it is free, expired or
// already holder's, and reports the hold; a new holder gets a new epoch.
func (q *LeaseQuery) Acquire(ctx context.Context, holder string, ttl time.Duration) (*Lease, bool, error) {
	now := q.now()
	var epoch int64
	err := q.d.db.QueryRowContext(ctx, `
		INSERT INTO leader_lease (name, holder, epoch, expires_at) VALUES ($1, $2, 1, `+now+` + $3)
		ON CONFLICT (name) DO UPDATE SET
			epoch = CASE WHEN leader_lease.holder = excluded.holder THEN leader_lease.epoch ELSE leader_lease.epoch + 1 END,
			holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leader_lease.holder = excluded.holder OR leader_lease.expires_at < `+now+`
		RETURNING epoch`, leaseName, holder, ttl.Milliseconds()).Scan(&epoch)
	if notFound(err) == ErrNotFound {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	return &Lease{Holder: holder, Epoch: epoch}, true, nil
}

// Renew extends a hold by ttl from now, if it is still this hold and has not
// run out.
func (q *LeaseQuery) Renew(ctx context.Context, l *Lease, ttl time.Duration) (bool, error) {
	now := q.now()
	res, err := q.d.db.ExecContext(ctx, `
		UPDATE leader_lease SET expires_at = `+now+` + $4
		WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at >= `+now,
		leaseName, l.Holder, l.Epoch, ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Release gives a hold up at once, so that a standby need not wait for it
// to run out (a clean shutdown).
func (q *LeaseQuery) Release(ctx context.Context, l *Lease) error {
	_, err := q.d.db.ExecContext(ctx, "UPDATE leader_lease SET expires_at = 0 WHERE name = $1 AND holder = $2 AND epoch = $3",
		leaseName, l.Holder, l.Epoch)
	if err != nil || q.d.Dialect != Postgres {
		return err
	}
	_, err = q.d.db.ExecContext(ctx, "SELECT pg_notify($1, '')", q.d.channel(TopicLease))
	return err
}

// Holder returns who holds the lease and whether it has run out.
func (q *LeaseQuery) Holder(ctx context.Context) (holder string, expired bool, err error) {
	err = q.d.db.QueryRowContext(ctx, "SELECT holder, expires_at < "+q.now()+" FROM leader_lease WHERE name = $1", leaseName).
		Scan(&holder, &expired)
	if notFound(err) == ErrNotFound {
		return "", true, nil
	}
	return holder, expired, err
}

// checkFence fails with ErrFenced, inside a write, unless l still holds the
// lease; a nil l (a single-process bridge) always passes.
func checkFence(ctx context.Context, tx Execer, l *Lease) error {
	if l == nil {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM leader_lease WHERE name = $1 AND holder = $2 AND epoch = $3",
		leaseName, l.Holder, l.Epoch).Scan(&n); err != nil {
		return err
	}
	if n != 1 {
		return ErrFenced
	}
	return nil
}
