package database

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Topic is something one bridge process tells the others sharing its
// PostgreSQL database: that it journalled work for the leader, or changed a
// login.
type Topic string

// Topics.
const (
	// TopicJournal: a standby journalled an event for the leader.
	TopicJournal Topic = "journal"
	// TopicLogins: the leader stored, changed or deleted a login; the
	// payload is its ID.
	TopicLogins Topic = "logins"
	// TopicLease: the leader gave the lease up.
	TopicLease Topic = "lease"
)

// channel is the PostgreSQL channel of a topic, unique to this database's
// schema (several bridges, or tests, may share one database).
func (d *Database) channel(t Topic) string {
	sum := sha256.Sum256([]byte(d.schema))
	return "trestle_" + string(t) + "_" + hex.EncodeToString(sum[:6])
}

// Notify tells the other processes about t, inside a write: they hear of it
// once the write commits, and not at all if it does not. It does nothing on
// SQLite, where one process is the whole bridge.
func (d *Database) Notify(ctx context.Context, tx Execer, t Topic, payload string) error {
	if d.Dialect != Postgres {
		return nil
	}
	var ignored string
	return tx.QueryRowContext(ctx, "SELECT pg_notify($1, $2)::text", d.channel(t), payload).Scan(&ignored)
}

// Subscribed is what Listen delivers each time its LISTEN has taken effect
// (at first and after a reconnect): notifications sent before then were
// missed, so a listener re-reads whatever it follows.
const Subscribed = "\x00subscribed"

// Listen delivers the payloads of t's notifications until ctx ends, over a
// connection of its own that it re-opens after failures, and Subscribed
// whenever it (re)starts listening. On SQLite the channel never delivers.
func (d *Database) Listen(ctx context.Context, t Topic) <-chan string {
	out := make(chan string, 64)
	if d.Dialect != Postgres {
		return out
	}
	go func() {
		for ctx.Err() == nil {
			err := d.listenOnce(ctx, d.channel(t), out)
			if ctx.Err() != nil {
				return
			}
			d.log.Warn().Err(err).Str("topic", string(t)).Msg("Lost the database notification connection; reconnecting")
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return out
}

func (d *Database) listenOnce(ctx context.Context, channel string, out chan<- string) error {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", driverConn)
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+channel); err != nil {
			return err
		}
		select {
		case out <- Subscribed:
		default:
		}
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			select {
			case out <- n.Payload:
			default: // a listener that is behind rescans anyway
			}
		}
	})
}
