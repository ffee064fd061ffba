-- Trestle's initial schema. Timestamps are Unix milliseconds. Metadata columns
-- hold connector-owned JSON. BIGSERIAL becomes INTEGER (the rowid alias) on
-- SQLite; everything else is identical on both databases.

CREATE TABLE bridge_user (
	mxid            TEXT   PRIMARY KEY,
	management_room TEXT   NOT NULL DEFAULT '',
	created_at      BIGINT NOT NULL
);

CREATE TABLE user_login (
	id          TEXT   PRIMARY KEY,
	user_mxid   TEXT   NOT NULL REFERENCES bridge_user (mxid) ON DELETE CASCADE,
	remote_name TEXT   NOT NULL,
	state       TEXT   NOT NULL DEFAULT '',
	state_error TEXT   NOT NULL DEFAULT '',
	metadata    TEXT   NOT NULL DEFAULT '{}',
	created_at  BIGINT NOT NULL
);
CREATE INDEX user_login_user_idx ON user_login (user_mxid);

CREATE TABLE portal (
	id            TEXT    NOT NULL,
	receiver      TEXT    NOT NULL,
	mxid          TEXT,
	room_type     TEXT    NOT NULL DEFAULT '',
	other_user_id TEXT    NOT NULL DEFAULT '',
	name          TEXT    NOT NULL DEFAULT '',
	topic         TEXT    NOT NULL DEFAULT '',
	avatar_id     TEXT    NOT NULL DEFAULT '',
	avatar_mxc    TEXT    NOT NULL DEFAULT '',
	name_set      BOOLEAN NOT NULL DEFAULT FALSE,
	relay_login   TEXT    NOT NULL DEFAULT '',
	metadata      TEXT    NOT NULL DEFAULT '{}',
	created_at    BIGINT  NOT NULL,
	PRIMARY KEY (id, receiver)
);
CREATE UNIQUE INDEX portal_mxid_idx ON portal (mxid);
CREATE INDEX portal_receiver_idx ON portal (receiver);

CREATE TABLE ghost (
	id         TEXT    PRIMARY KEY,
	name       TEXT    NOT NULL DEFAULT '',
	avatar_id  TEXT    NOT NULL DEFAULT '',
	avatar_mxc TEXT    NOT NULL DEFAULT '',
	name_set   BOOLEAN NOT NULL DEFAULT FALSE,
	avatar_set BOOLEAN NOT NULL DEFAULT FALSE,
	registered BOOLEAN NOT NULL DEFAULT FALSE,
	metadata   TEXT    NOT NULL DEFAULT '{}'
);

-- The message mapping: one row per (remote message, part) <-> Matrix event.
-- A Matrix event split into several remote messages has one row per remote
-- message, all with the same mxid, so mxid is indexed but not unique.
CREATE TABLE message (
	seq             BIGSERIAL PRIMARY KEY,
	portal_id       TEXT    NOT NULL,
	portal_receiver TEXT    NOT NULL,
	id              TEXT    NOT NULL,
	part_id         TEXT    NOT NULL DEFAULT '',
	mxid            TEXT    NOT NULL,
	sender_id       TEXT    NOT NULL DEFAULT '',
	sender_mxid     TEXT    NOT NULL DEFAULT '',
	timestamp       BIGINT  NOT NULL,
	edit_count      INTEGER NOT NULL DEFAULT 0,
	delivery        TEXT    NOT NULL DEFAULT '',
	metadata        TEXT    NOT NULL DEFAULT '{}',
	FOREIGN KEY (portal_id, portal_receiver) REFERENCES portal (id, receiver) ON DELETE CASCADE
);
CREATE UNIQUE INDEX message_remote_idx ON message (portal_receiver, id, part_id);
CREATE INDEX message_mxid_idx ON message (mxid);
CREATE INDEX message_portal_idx ON message (portal_id, portal_receiver, timestamp);

CREATE TABLE reaction (
	portal_id       TEXT   NOT NULL,
	portal_receiver TEXT   NOT NULL,
	message_id      TEXT   NOT NULL,
	message_part_id TEXT   NOT NULL DEFAULT '',
	sender_id       TEXT   NOT NULL,
	emoji_id        TEXT   NOT NULL DEFAULT '',
	emoji           TEXT   NOT NULL DEFAULT '',
	mxid            TEXT   NOT NULL,
	timestamp       BIGINT NOT NULL,
	PRIMARY KEY (portal_receiver, message_id, message_part_id, sender_id, emoji_id),
	FOREIGN KEY (portal_id, portal_receiver) REFERENCES portal (id, receiver) ON DELETE CASCADE
);
CREATE INDEX reaction_mxid_idx ON reaction (mxid);

-- Inbound journal: remote events committed before the connector acknowledged
-- them (a webhook answered 200), delivered to Matrix from here. Rows stay
-- after delivery, without payload, so that a replay of the same remote event
-- is recognised as a duplicate until they are pruned.
CREATE TABLE inbound_event (
	seq             BIGSERIAL PRIMARY KEY,
	login_id        TEXT    NOT NULL,
	portal_id       TEXT    NOT NULL,
	portal_receiver TEXT    NOT NULL,
	dedup_key       TEXT    NOT NULL,
	payload         TEXT    NOT NULL DEFAULT '',
	state           TEXT    NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	received_at     BIGINT  NOT NULL,
	updated_at      BIGINT  NOT NULL
);
CREATE UNIQUE INDEX inbound_event_dedup_idx ON inbound_event (login_id, dedup_key);
CREATE INDEX inbound_event_pending_idx ON inbound_event (seq) WHERE state = 'pending';
CREATE INDEX inbound_event_done_idx ON inbound_event (updated_at) WHERE state <> 'pending';

-- Outbound journal: Matrix events recorded before the homeserver's
-- transaction was acknowledged, sent to the remote network from here.
CREATE TABLE outbound_event (
	seq         BIGSERIAL PRIMARY KEY,
	event_id    TEXT    NOT NULL,
	room_id     TEXT    NOT NULL,
	sender      TEXT    NOT NULL,
	payload     TEXT    NOT NULL DEFAULT '',
	state       TEXT    NOT NULL,
	send_token  TEXT    NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT '',
	received_at BIGINT  NOT NULL,
	updated_at  BIGINT  NOT NULL
);
CREATE UNIQUE INDEX outbound_event_event_idx ON outbound_event (event_id);
CREATE UNIQUE INDEX outbound_event_token_idx ON outbound_event (send_token);
CREATE INDEX outbound_event_open_idx ON outbound_event (seq) WHERE state IN ('pending', 'sending');
CREATE INDEX outbound_event_done_idx ON outbound_event (updated_at) WHERE state NOT IN ('pending', 'sending');

-- Homeserver transactions already recorded, so a retried transaction is
-- acknowledged without being processed twice.
CREATE TABLE appservice_txn (
	txn_id      TEXT   PRIMARY KEY,
	received_at BIGINT NOT NULL
);
CREATE INDEX appservice_txn_received_idx ON appservice_txn (received_at);

-- Small bridge-wide values, e.g. the bot's /sync position.
CREATE TABLE bridge_kv (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
